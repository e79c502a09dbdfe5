/**
 * Gradient rules of matrix products: MatMul, Gemm and Einsum (vector–Jacobian products in standard ONNX ops,
 * as in grad-rules.ts, which lists them with the rest).
 */
import type { Emitter } from './emitter.js';
import { floatAttr as flt, intAttr as int } from './ir.js';
import { unsupported, type GradRule } from './grad-rule.js';

// ---- linear algebra ----

// Y[...,i,j] = Σ_k A[...,i,k]·B[...,k,j]: dA = G·Bᵀ, dB = Aᵀ·G (batch axes broadcast, then summed back)
// the last two axes swapped: a Transpose when the rank is known (ORT folds it into the MatMul as a
// FusedMatMul transA/transB), else an Einsum, which takes any rank but runs as its own slow kernel
// (and a value that is itself such a Transpose gives back its input: the forward's Transpose then keeps
// one consumer, which ORT can fold into its MatMul too)
const swapLast = (e: Emitter, v: string) => {
  const rank = (e.staticShape(v) ?? e.shapes.get(v))?.length;
  if (rank === undefined || rank < 2) return e.op('Einsum', [v], { equation: '...ij->...ji' });
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [rank - 1, rank - 2];
  const made = e.producer(v);
  const madePerm = made?.opType === 'Transpose' && !made.domain ? made.attrs['perm'] : undefined;
  if (madePerm?.type === 'ints' && madePerm.value.join() === perm.join()) return made!.inputs[0]!;
  return e.op('Transpose', [v], { perm });
};
const matMul: GradRule = {
  vjp(e, node, [g], need) {
    const [a, b] = node.inputs as [string, string];
    for (const v of [a, b])
      if (e.staticShape(v)?.length === 1) throw unsupported(node, 'rank-1 operands are not supported; export with explicit 2-D shapes');
    // operands with the same batch axes need no sum over broadcast ones (and no Shape of them at run time)
    const [sa, sb] = [e.shapes.get(a), e.shapes.get(b)];
    const sameBatch = !!sa && !!sb && sa.length === sb.length && sa.slice(0, -2).every((d, i) => d !== null && d === sb[i]);
    const fit = (grad: string, ref: string) => (sameBatch ? grad : e.unbroadcast(grad, ref));
    return [
      need[0] ? fit(e.op('MatMul', [g!, swapLast(e, b)]), a) : undefined,
      need[1] ? fit(e.op('MatMul', [swapLast(e, a), g!]), b) : undefined,
    ];
  },
};

// Y = α·A'·B' + β·C with A' = transA ? Aᵀ : A, B' likewise
const gemm: GradRule = {
  vjp(e, node, [g], need) {
    const [a, b, c] = node.inputs as [string, string, string | undefined];
    const alpha = flt(node, 'alpha', 1);
    const beta = flt(node, 'beta', 1);
    const tA = int(node, 'transA', 0);
    const tB = int(node, 'transB', 0);
    const gemmOp = (x: string, y: string, ta: number, tb: number) =>
      e.op('Gemm', [x, y], { alpha: { type: 'float', value: alpha }, transA: ta, transB: tb });
    const da = need[0] ? (tA ? gemmOp(b, g!, tB, 1) : gemmOp(g!, b, 0, tB ? 0 : 1)) : undefined;
    const db = need[1] ? (tB ? gemmOp(g!, a, 1, tA) : gemmOp(a, g!, tA ? 0 : 1, 0)) : undefined;
    const dc = need[2] && c ? e.unbroadcast(beta === 1 ? g! : e.op('Mul', [g!, e.scalarLike(beta, g!)]), c, node.outputs[0]) : undefined;
    return [da, db, dc];
  },
};

/** Parse an einsum equation into operand label lists (ellipsis kept as '.') and the output. */
export function parseEinsum(equation: string): { inputs: string[]; output: string } {
  const eq = equation.replace(/\s+/g, '').replace(/\.\.\./g, '.');
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  const inputs = lhs.split(',');
  if (rhs !== undefined) return { inputs, output: rhs };
  const counts = new Map<string, number>();
  for (const ch of inputs.join('')) if (ch !== '.') counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const once = [...counts]
    .filter(([, n]) => n === 1)
    .map(([c]) => c)
    .sort()
    .join('');
  return { inputs, output: (eq.includes('.') ? '.' : '') + once };
}

const einsum: GradRule = {
  vjp(e, node, [g], need) {
    const eqAttr = node.attrs['equation'];
    if (eqAttr?.type !== 'string') throw unsupported(node, 'no equation');
    const { inputs, output } = parseEinsum(eqAttr.value);
    const dot = (s: string) => s.replace(/\./g, '...');
    return node.inputs.map((x, i) => {
      if (!need[i]) return undefined;
      const mine = inputs[i]!;
      const others = inputs.filter((_, k) => k !== i);
      if (new Set(mine).size !== mine.length) throw unsupported(node, `operand ${i} repeats a label (${eqAttr.value})`);
      for (const ch of mine) {
        if (ch !== '.' && !output.includes(ch) && !others.some((o) => o.includes(ch))) {
          throw unsupported(node, `label "${ch}" of operand ${i} is summed within that operand alone (${eqAttr.value})`);
        }
      }
      const terms = [output, ...others].map(dot).join(',');
      // an operand without '...' beside ones with it: keep the ellipsis axes, then sum them away
      const target = !mine.includes('.') && output.includes('.') ? `.${mine}` : mine;
      const grad = e.op('Einsum', [g!, ...node.inputs.filter((_, k) => k !== i)], { equation: `${terms}->${dot(target)}` });
      return target.includes('.') ? e.unbroadcast(grad, x) : grad;
    });
  },
};

/** This file's rules by op type. */
export const LINALG_RULES: Record<string, GradRule> = { MatMul: matMul, Gemm: gemm, Einsum: einsum };
