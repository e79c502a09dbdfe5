/**
 * Vector–Jacobian products for ONNX operators, written with standard ONNX ops only
 * (default domain, opset ≥ 17), so any ONNX Runtime build and execution provider runs them.
 * Each rule gets the node and the gradients of its outputs and returns one gradient (or
 * undefined) per input slot it was asked for.
 */
import { perChannel } from './decompose.js';
import { invStdFromMean } from './units.js';
import type { Emitter } from './emitter.js';
import { floatAttr as flt, intAttr as int, intsAttr as ints, strAttr as str, type Dim, type OnnxNode } from './ir.js';

export type Grads = (string | undefined)[];

export interface GradRule {
  /** input slots through which gradient flows (default: all) */
  diffInputs?: (node: OnnxNode) => number[];
  vjp(e: Emitter, node: OnnxNode, gOut: Grads, need: boolean[]): Grads;
}

/** Ops whose outputs carry no gradient (shapes, comparisons, integer results). */
export const NON_DIFFERENTIABLE = new Set([
  'Shape',
  'Size',
  'Equal',
  'Less',
  'LessOrEqual',
  'Greater',
  'GreaterOrEqual',
  'Not',
  'And',
  'Or',
  'Xor',
  'NonZero',
  'ArgMax',
  'ArgMin',
  'ConstantOfShape',
  'Range',
  'Constant',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'IsNaN',
  'IsInf',
  'RandomNormal',
  'RandomNormalLike',
  'RandomUniform',
  'RandomUniformLike',
  'EyeLike',
  'OneHot',
]);

export function unsupported(node: OnnxNode, why: string): Error {
  return new Error(`cannot differentiate ${node.opType} node "${node.name}": ${why}`);
}

const first = () => [0];
const unary = (f: (e: Emitter, x: string, y: string, g: string, node: OnnxNode) => string): GradRule => ({
  diffInputs: first,
  vjp: (e, node, [g]) => [f(e, node.inputs[0]!, node.outputs[0]!, g!, node)],
});

// ---- elementwise ----

const relu: GradRule = unary((e, x, _y, g) => e.op('Where', [e.op('Greater', [x, e.scalarLike(0, x)]), g, e.scalarLike(0, g)]));
const leakyRelu: GradRule = unary((e, x, _y, g, n) =>
  e.op('Where', [e.op('Greater', [x, e.scalarLike(0, x)]), g, e.op('Mul', [g, e.scalarLike(flt(n, 'alpha', 0.01), g)])]),
);
const sigmoid: GradRule = unary((e, _x, y, g) => e.op('Mul', [g, e.op('Mul', [y, e.op('Sub', [e.scalarLike(1, y), y])])]));
const tanh: GradRule = unary((e, _x, y, g) => e.op('Mul', [g, e.op('Sub', [e.scalarLike(1, y), e.op('Mul', [y, y])])]));
const softplus: GradRule = unary((e, x, _y, g) => e.op('Mul', [g, e.op('Sigmoid', [x])]));
const exp: GradRule = unary((e, _x, y, g) => e.op('Mul', [g, y]));
const log: GradRule = unary((e, x, _y, g) => e.op('Div', [g, x]));
const sqrt: GradRule = unary((e, _x, y, g) => e.op('Div', [e.op('Mul', [g, e.scalarLike(0.5, g)]), y]));
const neg: GradRule = unary((e, _x, _y, g) => e.op('Neg', [g]));
const reciprocal: GradRule = unary((e, _x, y, g) => e.op('Neg', [e.op('Mul', [g, e.op('Mul', [y, y])])]));
const abs: GradRule = unary((e, x, _y, g) => e.op('Mul', [g, e.op('Sign', [x])]));
const sin: GradRule = unary((e, x, _y, g) => e.op('Mul', [g, e.op('Cos', [x])]));
const cos: GradRule = unary((e, x, _y, g) => e.op('Neg', [e.op('Mul', [g, e.op('Sin', [x])])]));
// d erf(x)/dx = 2/√π · exp(-x²)
const erf: GradRule = unary((e, x, _y, g) =>
  e.op('Mul', [g, e.op('Mul', [e.scalarLike(2 / Math.sqrt(Math.PI), x), e.op('Exp', [e.op('Neg', [e.op('Mul', [x, x])])])])]),
);
const identity: GradRule = unary((_e, _x, _y, g) => g);
const castLike: GradRule = unary((e, x, _y, g) => e.op('CastLike', [g, x]));

const pow: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const [x, p] = node.inputs as [string, string];
    const pm1 = e.op('Sub', [p, e.op('CastLike', [e.scalarLike(1, x), p])]);
    const dx = e.op('Mul', [e.op('Mul', [g!, e.op('CastLike', [p, x])]), e.op('Pow', [x, pm1])]);
    return [e.unbroadcast(dx, x, node.outputs[0])];
  },
};

const clip: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const [x, lo, hi] = node.inputs;
    let mask: string | null = null;
    if (lo) mask = e.op('GreaterOrEqual', [x!, lo]);
    if (hi) {
      const m = e.op('LessOrEqual', [x!, hi]);
      mask = mask ? e.op('And', [mask, m]) : m;
    }
    return [mask ? e.op('Where', [mask, g!, e.scalarLike(0, g!)]) : g];
  },
};

// softmax: dx = y·(g - Σ_axis g·y)
const softmax: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const y = node.outputs[0]!;
    const s = e.op('ReduceSum', [e.op('Mul', [g!, y]), e.i64([int(node, 'axis', -1)])], { keepdims: 1 });
    return [e.op('Mul', [y, e.op('Sub', [g!, s])])];
  },
};
// log-softmax: dx = g - softmax·Σ_axis g
const logSoftmax: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const s = e.op('ReduceSum', [g!, e.i64([int(node, 'axis', -1)])], { keepdims: 1 });
    return [e.op('Sub', [g!, e.op('Mul', [e.op('Exp', [node.outputs[0]!]), s])])];
  },
};

// ---- normalization ----

/**
 * InstanceNormalization y = γ·x̂ + β, x̂ = (x − μ)·r, r = 1/sqrt(σ² + ε), over the spatial axes of
 * each (n, c), without decomposing the forward (ORT keeps its fused kernel):
 *   dx = r·(gx̂ − mean(gx̂) − x̂·mean(gx̂·x̂)),  gx̂ = g·γ,  dγ = Σ g·x̂,  dβ = Σ g  (sums over n and space).
 * x̂ is the node's own output when γ = 1 and β = 0 (GroupNorm as torch.onnx writes it), else one
 * more InstanceNormalization; σ² comes from q = mean(x̂·x) = σ²·r (no E[x²] − E[x]² cancellation).
 * Needs a known rank (the autodiff decomposes the node otherwise).
 */
const instanceNorm: GradRule = {
  diffInputs: () => [0, 1, 2],
  vjp(e, node, [g], need) {
    const [x, scale, bias] = node.inputs as [string, string, string];
    const y = node.outputs[0]!;
    const rank = e.shapes.get(x)?.length;
    if (rank === undefined) throw unsupported(node, 'the rank of its input is not known');
    const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
    const eps = flt(node, 'epsilon', 1e-5);
    const sv = e.constValues(scale);
    const bv = e.constValues(bias);
    const identityAffine = !!sv && sv.every((v) => v === 1) && !!bv && bv.every((v) => v === 0);
    const xhat = identityAffine
      ? y
      : e.op(
          'InstanceNormalization',
          [
            x,
            e.likeFloat(
              e.op('ConstantOfShape', [e.op('Shape', [scale])], {
                value: { type: 'tensor', value: { dtype: 'float32', dims: [1], data: Float32Array.from([1]) } },
              }),
              scale,
            ),
            e.zerosLike(scale),
          ],
          { epsilon: { type: 'float', value: eps } },
        );
    const out: Grads = [undefined, undefined, undefined];
    if (need[0]) {
      // means over the spatial axes (ReduceSum takes its axes as an input in every opset ≥ 13)
      const count = e.op('CastLike', [e.op('Div', [e.op('Size', [x]), e.op('Mul', [e.shapeSlice(x, 0, 1), e.shapeSlice(x, 1, 2)])]), x]);
      const mean = (v: string) => e.op('Div', [e.op('ReduceSum', [v, e.i64(axes)], { keepdims: 1 }), count]);
      const r = invStdFromMean(e, mean(e.op('Mul', [xhat, x])), eps, x);
      const gxh = identityAffine ? g! : e.op('Mul', [g!, perChannel(e, scale, x)]);
      const m1 = mean(gxh);
      const m2 = mean(e.op('Mul', [gxh, xhat]));
      const centered = e.op('Sub', [gxh, e.op('Add', [m1, e.op('Mul', [xhat, m2])])]);
      out[0] = e.op('Mul', [centered, r]);
    }
    if (need[1]) out[1] = e.op('ReduceSum', [e.op('Mul', [g!, xhat]), e.i64([0, ...axes])], { keepdims: 0 });
    if (need[2]) out[2] = e.op('ReduceSum', [g!, e.i64([0, ...axes])], { keepdims: 0 });
    return out;
  },
};

// ---- broadcasting binary ----

const binary = (f: (e: Emitter, a: string, b: string, y: string, g: string) => [string | undefined, string | undefined]): GradRule => ({
  vjp(e, node, [g], need) {
    const [a, b] = node.inputs as [string, string];
    const y = node.outputs[0]!;
    const [da, db] = f(e, a, b, y, g!);
    return [need[0] && da ? e.unbroadcast(da, a, y) : undefined, need[1] && db ? e.unbroadcast(db, b, y) : undefined];
  },
});
const add = binary((_e, _a, _b, _y, g) => [g, g]);
const sub = binary((e, _a, _b, _y, g) => [g, e.op('Neg', [g])]);
const mul = binary((e, a, b, _y, g) => [e.op('Mul', [g, b]), e.op('Mul', [g, a])]);
// d(a/b) = g/b, -g·y/b
const div = binary((e, _a, b, y, g) => [e.op('Div', [g, b]), e.op('Neg', [e.op('Div', [e.op('Mul', [g, y]), b])])]);

const sum: GradRule = {
  vjp: (e, node, [g], need) => node.inputs.map((x, i) => (need[i] ? e.unbroadcast(g!, x, node.outputs[0]) : undefined)),
};

const where: GradRule = {
  diffInputs: () => [1, 2],
  vjp(e, node, [g], need) {
    const [c, a, b] = node.inputs as [string, string, string];
    const zero = e.scalarLike(0, g!);
    return [
      undefined,
      need[1] ? e.unbroadcast(e.op('Where', [c, g!, zero]), a, node.outputs[0]) : undefined,
      need[2] ? e.unbroadcast(e.op('Where', [c, zero, g!]), b, node.outputs[0]) : undefined,
    ];
  },
};

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

// ---- convolutions ----

interface ConvAttrs {
  spatial: number;
  kernel: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
}

function convAttrs(e: Emitter, node: OnnxNode): ConvAttrs {
  const w = e.staticShape(node.inputs[1]!);
  const kernel = ints(node, 'kernel_shape') ?? (w && w.slice(2).every((d) => typeof d === 'number') ? (w.slice(2) as number[]) : null);
  if (!kernel) throw unsupported(node, 'the kernel shape is not static (give kernel_shape or a weight with known dims)');
  const spatial = kernel.length;
  const autoPad = str(node, 'auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID')
    throw unsupported(node, `auto_pad=${autoPad} is not supported; export with explicit pads`);
  return {
    spatial,
    kernel,
    strides: ints(node, 'strides') ?? Array(spatial).fill(1),
    pads: autoPad === 'VALID' ? Array(2 * spatial).fill(0) : (ints(node, 'pads') ?? Array(2 * spatial).fill(0)),
    dilations: ints(node, 'dilations') ?? Array(spatial).fill(1),
    group: int(node, 'group', 1),
  };
}

/**
 * Make `v`'s spatial size equal `ref`'s (run-time sizes): cut what lies beyond, pad zeros at
 * the end where `v` is short (positions no window reached).
 */
function fitSpatialTo(e: Emitter, v: string, ref: string, spatial: number): string {
  const axes = e.i64(Array.from({ length: spatial }, (_, i) => i + 2));
  const cut = e.op('Slice', [v, e.i64(Array(spatial).fill(0)), e.shapeSlice(ref, 2), axes]);
  const short = e.op('Sub', [e.shapeSlice(ref, 2), e.shapeSlice(cut, 2)]);
  const pads = e.op('Concat', [e.i64(Array(2 + spatial).fill(0)), e.i64([0, 0]), short], { axis: 0 });
  return e.op('Pad', [cut, pads]);
}

/** Conv pads with the end pads dropped: the transposed convolution then covers the input's end rows. */
const beginPadsOnly = (pads: number[]) => pads.map((p, i) => (i < pads.length / 2 ? p : 0));

/**
 * dX of a convolution. Stride 1: a convolution of g with the flipped, channel-transposed
 * kernel and complementary pads (ORT's Conv kernels are far faster than ConvTranspose; the
 * kernel rearrangement is constant-folded when W is an initializer). Otherwise the
 * transposed convolution, fitted to x's size.
 */
function convInputGrad(e: Emitter, g: string, w: string, x: string, a: ConvAttrs): string {
  const sp = a.spatial;
  const reach = a.kernel.map((k, i) => a.dilations[i]! * (k - 1));
  const flippedPads = a.pads.map((p, i) => reach[i % sp]! - p);
  if (a.strides.every((s) => s === 1) && flippedPads.every((p) => p >= 0)) {
    // a gradient with fewer channels than one NCHWc block (an image's 3) would pad them to a block
    // in ORT's fast kernel: there the transposed convolution, at stride 1 exactly x's size, is cheaper
    const inputChannels = e.staticShape(w)?.[1];
    if (typeof inputChannels === 'number' && a.group * inputChannels < 8)
      return e.op('ConvTranspose', [g, w], { pads: a.pads, dilations: a.dilations, group: a.group });
    const spatialAxes = Array.from({ length: sp }, (_, i) => i + 2);
    const flipped = e.op('Slice', [
      w,
      e.i64(Array(sp).fill(-1)),
      e.i64(Array(sp).fill(-(2 ** 62))),
      e.i64(spatialAxes),
      e.i64(Array(sp).fill(-1)),
    ]);
    let wt: string;
    if (a.group === 1) wt = e.op('Transpose', [flipped], { perm: [1, 0, ...spatialAxes] });
    else {
      const G = a.group;
      const five = Array.from({ length: sp }, (_, i) => i + 3);
      const grouped = e.op('Reshape', [flipped, e.op('Concat', [e.i64([G, -1]), e.shapeSlice(w, 1)], { axis: 0 })]); // [G, co, ci, k…]
      const swapped = e.op('Transpose', [grouped], { perm: [0, 2, 1, ...five] }); // [G, ci, co, k…]
      // [G·ci, co, k…]: each group's output channels become the new convolution's input channels
      wt = e.op('Reshape', [
        swapped,
        e.op('Concat', [e.i64([-1]), e.op('Div', [e.shapeSlice(w, 0, 1), e.i64([G])]), e.shapeSlice(w, 2)], { axis: 0 }),
      ]);
    }
    return e.op('Conv', [g, wt], { pads: flippedPads, dilations: a.dilations, group: a.group });
  }
  const common = { strides: a.strides, pads: beginPadsOnly(a.pads), dilations: a.dilations, group: a.group };
  return fitSpatialTo(e, e.op('ConvTranspose', [g, w], common), x, sp);
}

/**
 * dW of a convolution from its input x [N, G·ci, …] and output gradient gy [N, G·co, …]:
 * a convolution over the batch axis, grouped by G, with strides and dilations swapped.
 * Returns [G·co, ci, k…].
 */
function convWeightGrad(e: Emitter, x: string, gy: string, a: ConvAttrs, channels?: [Dim, Dim]): string {
  if (a.group === 1 && a.spatial === 2 && a.dilations.every((d) => d === 1)) return convWeightGradIm2col(e, x, gy, a, channels);
  return convWeightGradByConv(e, x, gy, a);
}

/**
 * dW of an ungrouped 2-D convolution from gathered windows (im2col), one GEMM per kernel tap:
 * dW[co, ci, kh, kw] = Σ_n Σ_p gy[n, co, p]·x_pad[n, ci, s·p + (kh, kw)] — each tap's window is one
 * strided Slice of the padded input, multiplied (batched over n, one operand transposed inside the GEMM)
 * by gy and summed over n. ORT's Conv over the batch axis (below) runs a kernel as large as the image
 * with k×k outputs at a few GFLOP/s; concatenating the k² windows first (one GEMM with k²·ci columns)
 * copied every window twice more.
 *
 * A stride-1 convolution that keeps the image size ("same" pads) and narrows (co < ci: the U-Net's up
 * path reads its skip connections concatenated, 96 → 32, 128 → 64) shifts gy instead of x:
 * dW[co, ci, kh, kw] = Σ_n Σ_q gy_pad[n, co, q + (k−1) − (kh, kw)]·x[n, ci, q], gy padded by the
 * complementary pads, so the windows hold co channels instead of ci. And the operand with fewer channels
 * is the GEMM's second, the one MLAS packs for every call (1.4× faster for 96 × 32 channels).
 */
function convWeightGradIm2col(e: Emitter, x: string, gy: string, a: ConvAttrs, channels?: [Dim, Dim]): string {
  const [kh, kw] = a.kernel as [number, number];
  const [sh, sw] = a.strides as [number, number];
  const flat = (v: string) => e.op('Reshape', [v, e.i64([0, 0, -1])]);
  const ci = e.staticShape(x)?.[1] ?? channels?.[0];
  const co = e.staticShape(gy)?.[1] ?? channels?.[1];
  const narrows = typeof ci === 'number' && typeof co === 'number' && co < ci;
  const [pt, pl, pb, pr] = a.pads as [number, number, number, number];
  const same = sh === 1 && sw === 1 && pt + pb === kh - 1 && pl + pr === kw - 1;
  // products are [N, ci, co] when gy is the narrower operand, else [N, co, ci]
  const product = (xs: string, gys: string) =>
    narrows
      ? e.op('MatMul', [xs, e.op('Transpose', [gys], { perm: [0, 2, 1] })])
      : e.op('MatMul', [gys, e.op('Transpose', [xs], { perm: [0, 2, 1] })]);
  const products: string[] = [];
  const shiftGy = same && narrows && kh * kw > 1;
  // the windows: of gy padded by the complementary pads (shiftGy), else of x padded by the conv's own
  const windowed = shiftGy
    ? e.op('Pad', [gy, e.i64([0, 0, pb, pr, 0, 0, pt, pl])])
    : a.pads.some((p) => p !== 0)
      ? e.op('Pad', [x, e.i64([0, 0, pt, pl, 0, 0, pb, pr])])
      : x;
  const fixed = flat(shiftGy ? x : gy); // [N, ci or co, P], shared by the taps
  const span = shiftGy ? e.shapeSlice(x, 2) : e.op('Mul', [e.shapeSlice(gy, 2), e.i64([sh, sw])]); // what a window covers
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const starts = e.i64(shiftGy ? [kh - 1 - i, kw - 1 - j] : [i, j]);
      const window =
        kh * kw === 1 && sh === 1 && sw === 1
          ? windowed
          : e.op('Slice', [windowed, starts, e.op('Add', [span, starts]), e.i64([2, 3]), e.i64([sh, sw])]); // [N, ·, Ho, Wo]
      products.push(shiftGy ? product(fixed, flat(window)) : product(flat(window), fixed));
    }
  }
  // each tap's [N, ·, ·] summed over n, then the k² small sums stacked (summing by a GEMM with a row of
  // ones instead was 4–6 % faster but grew the trainer's peak memory by a quarter: docs/benchmarks.md)
  const summed = e.op(
    'Concat',
    products.map((t) => e.op('Unsqueeze', [e.op('ReduceSum', [t, e.i64([0])], { keepdims: 0 }), e.i64([2])])),
    { axis: 2 },
  ); // [·, ·, kh·kw]
  const dw = narrows ? e.op('Transpose', [summed], { perm: [1, 0, 2] }) : summed; // [co, ci, kh·kw]
  return e.op('Reshape', [dw, e.op('Concat', [e.shapeSlice(dw, 0, 2), e.i64([kh, kw])], { axis: 0 })]);
}

function convWeightGradByConv(e: Emitter, x: string, gy: string, a: ConvAttrs): string {
  const sp = a.spatial;
  const spatialAxes = Array.from({ length: sp }, (_, i) => i + 2);
  let xT: string;
  let gT: string;
  if (a.group === 1) {
    xT = e.op('Transpose', [x], { perm: [1, 0, ...spatialAxes] }); // [ci, N, …]
    gT = e.op('Transpose', [gy], { perm: [1, 0, ...spatialAxes] }); // [co, N, …]
  } else {
    const G = a.group;
    const shp = (v: string) => e.op('Concat', [e.shapeSlice(v, 0, 1), e.i64([G, -1]), e.shapeSlice(v, 2)], { axis: 0 });
    const five = Array.from({ length: sp }, (_, i) => i + 3);
    const x5 = e.op('Reshape', [x, shp(x)]); // [N, G, ci, …]
    xT = e.op('Reshape', [
      e.op('Transpose', [x5], { perm: [2, 1, 0, ...five] }),
      e.op('Concat', [e.i64([0, -1]), e.shapeSlice(x, 2)], { axis: 0 }),
    ]); // [ci, G·N, …]
    const g5 = e.op('Reshape', [gy, shp(gy)]); // [N, G, co, …]
    gT = e.op('Reshape', [
      e.op('Transpose', [g5], { perm: [1, 2, 0, ...five] }),
      e.op('Concat', [e.i64([-1]), e.shapeSlice(gy, 0, 1), e.shapeSlice(gy, 2)], { axis: 0 }),
    ]); // [G·co, N, …]
  }
  const full = e.op('Conv', [xT, gT], { strides: a.dilations, dilations: a.strides, pads: a.pads, group: a.group }); // [ci, G·co, k'…]
  const cut = e.op('Slice', [full, e.i64(Array(sp).fill(0)), e.i64(a.kernel), e.i64(spatialAxes)]);
  return e.op('Transpose', [cut], { perm: [1, 0, ...spatialAxes] });
}

function biasGrad(e: Emitter, gy: string, spatial: number): string {
  return e.op('ReduceSum', [gy, e.i64([0, ...Array.from({ length: spatial }, (_, i) => i + 2)])], { keepdims: 0 });
}

const conv: GradRule = {
  vjp(e, node, [g], need) {
    const [x, w] = node.inputs as [string, string];
    const a = convAttrs(e, node);
    const dx = need[0] ? convInputGrad(e, g!, w, x, a) : undefined;
    // W [co, ci/G, k…]: the channel counts when x's or g's shapes are not known
    const ws = e.staticShape(w);
    const dw = need[1] ? convWeightGrad(e, x, g!, a, ws ? [ws[1]!, ws[0]!] : undefined) : undefined;
    const db = need[2] ? biasGrad(e, g!, a.spatial) : undefined;
    return [dx, dw, db];
  },
};

const convTranspose: GradRule = {
  vjp(e, node, [g], need) {
    const [x, w] = node.inputs as [string, string];
    if (ints(node, 'output_shape')) throw unsupported(node, 'output_shape is not supported; export with pads and output_padding');
    const a = convAttrs(e, node);
    const common = { strides: a.strides, pads: a.pads, dilations: a.dilations, group: a.group };
    // the adjoint of a transposed convolution is the convolution; its extra output rows are cut
    const dxFull = need[0] ? e.op('Conv', [g!, w], common) : undefined;
    const dx = dxFull
      ? e.op('Slice', [
          dxFull,
          e.i64(Array(a.spatial).fill(0)),
          e.shapeSlice(x, 2),
          e.i64(Array.from({ length: a.spatial }, (_, i) => i + 2)),
        ])
      : undefined;
    // W [G·ci, co, k…] pairs input channels of x with output channels of y: the conv weight grad with roles swapped
    const dw = need[1] ? convWeightGrad(e, g!, x, a) : undefined;
    const db = need[2] ? biasGrad(e, g!, a.spatial) : undefined;
    return [dx, dw, db];
  },
};

// ---- pooling and resizing ----

/** Spread g back over windows: a unit-kernel transposed convolution per channel. */
function spreadWindows(e: Emitter, g: string, x: string, kernel: number[], strides: number[], pads: number[]): string {
  const sp = kernel.length;
  const flat = e.op('Reshape', [g, e.op('Concat', [e.i64([-1, 1]), e.shapeSlice(g, 2)], { axis: 0 })]);
  const ones = e.likeFloat(
    e.constant({ dtype: 'float32', dims: [1, 1, ...kernel], data: new Float32Array(kernel.reduce((p, k) => p * k, 1)).fill(1) }),
    g,
  );
  const spread = e.op('ConvTranspose', [flat, ones], { strides, pads: beginPadsOnly(pads) });
  const xFlat = e.op('Reshape', [x, e.op('Concat', [e.i64([-1, 1]), e.shapeSlice(x, 2)], { axis: 0 })]);
  return e.op('Reshape', [fitSpatialTo(e, spread, xFlat, sp), e.shape(x)]);
}

const averagePool: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const x = node.inputs[0]!;
    const kernel = ints(node, 'kernel_shape');
    if (!kernel) throw unsupported(node, 'no kernel_shape');
    if (int(node, 'ceil_mode', 0)) throw unsupported(node, 'ceil_mode=1 is not supported');
    const autoPad = str(node, 'auto_pad', 'NOTSET');
    if (autoPad !== 'NOTSET' && autoPad !== 'VALID') throw unsupported(node, `auto_pad=${autoPad} is not supported`);
    const sp = kernel.length;
    const strides = ints(node, 'strides') ?? Array(sp).fill(1);
    const pads = autoPad === 'VALID' ? Array(2 * sp).fill(0) : (ints(node, 'pads') ?? Array(2 * sp).fill(0));
    const area = kernel.reduce((p, k) => p * k, 1);
    let scaled: string;
    if (int(node, 'count_include_pad', 0) || pads.every((p) => p === 0)) {
      scaled = e.op('Div', [g!, e.scalarLike(area, g!)]);
    } else {
      // windows at the border average fewer elements: divide by each window's count
      const count = e.op('Mul', [
        e.op(
          'AveragePool',
          [
            e.likeFloat(
              e.op('ConstantOfShape', [e.shape(x)], {
                value: { type: 'tensor', value: { dtype: 'float32', dims: [1], data: Float32Array.from([1]) } },
              }),
              x,
            ),
          ],
          {
            kernel_shape: kernel,
            strides,
            pads,
            count_include_pad: 1,
          },
        ),
        e.scalarLike(area, g!),
      ]);
      scaled = e.op('Div', [g!, count]);
    }
    return [spreadWindows(e, scaled, x, kernel, strides, pads)];
  },
};

const globalAveragePool: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const x = node.inputs[0]!;
    const count = e.op('CastLike', [e.op('Div', [e.op('Size', [x]), e.op('Size', [node.outputs[0]!])]), x]);
    return [e.op('Div', [e.op('Expand', [g!, e.shape(x)]), count])];
  },
};

// nearest-neighbour upsampling by integer factors: each input pixel receives the sum of its block
const resize: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const x = node.inputs[0]!;
    if (str(node, 'mode', 'nearest') !== 'nearest')
      throw unsupported(node, `mode=${str(node, 'mode', '')} is not supported (only nearest, integer factors)`);
    const rank = e.staticShape(x)?.length ?? 4;
    const sp = rank - 2;
    const inSp = e.shapeSlice(x, 2);
    const factors = e.op('Div', [e.shapeSlice(g!, 2), inSp]);
    // [N, C, h1, f1, h2, f2, …]
    const parts: string[] = [e.shapeSlice(x, 0, 2)];
    for (let i = 0; i < sp; i++) {
      parts.push(e.op('Slice', [inSp, e.i64([i]), e.i64([i + 1])]), e.op('Slice', [factors, e.i64([i]), e.i64([i + 1])]));
    }
    const blocks = e.op('Reshape', [g!, e.op('Concat', parts, { axis: 0 })]);
    return [e.op('ReduceSum', [blocks, e.i64(Array.from({ length: sp }, (_, i) => 3 + 2 * i))], { keepdims: 0 })];
  },
};

// ---- reductions ----

function reduceAxes(e: Emitter, node: OnnxNode): { axes: string | null; keep: boolean } {
  const attr = ints(node, 'axes');
  const keep = int(node, 'keepdims', 1) === 1;
  if (attr) return { axes: e.i64(attr), keep };
  return { axes: node.inputs[1] || null, keep };
}

const reduceSumOrMean = (mean: boolean): GradRule => ({
  diffInputs: first,
  vjp(e, node, [g]) {
    const x = node.inputs[0]!;
    const { axes, keep } = reduceAxes(e, node);
    if (!axes && int(node, 'noop_with_empty_axes', 0)) return [g];
    let gg = g!;
    if (!keep && axes) gg = e.op('Unsqueeze', [gg, axes]);
    let dx = e.op('Expand', [gg, e.shape(x)]);
    if (mean) dx = e.op('Div', [dx, e.op('CastLike', [e.op('Div', [e.op('Size', [x]), e.op('Size', [node.outputs[0]!])]), x])]);
    return [dx];
  },
});

// ---- shape plumbing ----

const reshapeLike: GradRule = { diffInputs: first, vjp: (e, node, [g]) => [e.op('Reshape', [g!, e.shape(node.inputs[0]!)])] };

const transpose: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const perm = ints(node, 'perm');
    if (!perm) return [e.op('Transpose', [g!])];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [e.op('Transpose', [g!], { perm: inv })];
  },
};

const expand: GradRule = { diffInputs: first, vjp: (e, node, [g]) => [e.unbroadcast(g!, node.inputs[0]!, node.outputs[0])] };

const concat: GradRule = {
  vjp(e, node, [g], need) {
    const axis = int(node, 'axis', 0);
    const sizes = node.inputs.map((x) => e.op('Gather', [e.shape(x), e.i64([axis])], { axis: 0 }));
    const parts = e.opMulti('Split', [g!, e.op('Concat', sizes, { axis: 0 })], { axis }, node.inputs.length);
    return parts.map((p, i) => (need[i] ? p : undefined));
  },
};

const split: GradRule = {
  diffInputs: first,
  vjp(e, node, gOut) {
    const axis = int(node, 'axis', 0);
    const parts = node.outputs.map((y, i) => gOut[i] ?? e.zerosLike(y));
    return [e.op('Concat', parts, { axis })];
  },
};

const slice: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const [x, starts, ends, axesIn, stepsIn] = node.inputs as [string, string, string, string | undefined, string | undefined];
    const steps = stepsIn ? e.constValues(stepsIn) : null;
    if (stepsIn && (!steps || steps.some((s) => s !== 1))) throw unsupported(node, 'only steps of 1 are supported');
    const rank = e.rank(x);
    const axes0 = axesIn || e.op('Range', [e.i64Scalar(0), e.op('Size', [starts]), e.i64Scalar(1)]);
    const axes = e.op('Where', [e.op('Less', [axes0, e.i64Scalar(0)]), e.op('Add', [axes0, rank]), axes0]);
    const dims = e.op('Gather', [e.shape(x), axes], { axis: 0 });
    const zero = e.i64Scalar(0);
    const norm = (v: string) => {
      const wrapped = e.op('Where', [e.op('Less', [v, zero]), e.op('Add', [v, dims]), v]);
      return e.op('Max', [e.op('Min', [wrapped, dims]), zero]);
    };
    const begin = norm(starts);
    const end = e.op('Sub', [dims, e.op('Max', [norm(ends), begin])]);
    const pads0 = e.op('ConstantOfShape', [e.op('Unsqueeze', [e.op('Mul', [rank, e.i64Scalar(2)]), e.i64([0])])], {
      value: { type: 'tensor', value: { dtype: 'int64', dims: [1], data: BigInt64Array.from([0n]) } },
    });
    const pads1 = e.op('ScatterElements', [pads0, axes, begin], { axis: 0 });
    const pads = e.op('ScatterElements', [pads1, e.op('Add', [axes, rank]), end], { axis: 0 });
    return [e.op('Pad', [g!, pads])];
  },
};

/** Pad (constant mode, pads ≥ 0, the default axes): the gradient is the unpadded window of g. */
const pad: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const [x, padsIn, , axesIn] = node.inputs as [string, string, string | undefined, string | undefined];
    if (str(node, 'mode', 'constant') !== 'constant') throw unsupported(node, 'only constant-mode padding is differentiable');
    const pads = e.constValues(padsIn);
    if (!pads || axesIn) throw unsupported(node, 'the pads must be a constant over all axes');
    if (pads.some((p) => p < 0)) throw unsupported(node, 'negative pads (crops) are not supported');
    const r = pads.length / 2;
    const begin = pads.slice(0, r);
    const ends = e.op('Add', [e.i64(begin), e.shape(x)]);
    return [e.op('Slice', [g!, e.i64(begin), ends, e.i64(begin.map((_, i) => i))])];
  },
};

const gather: GradRule = {
  diffInputs: first,
  vjp(e, node, [g]) {
    const [data, indices] = node.inputs as [string, string];
    let axis = int(node, 'axis', 0);
    const idx = e.op('Unsqueeze', [indices, e.i64([-1])]);
    if (axis === 0) return [e.op('ScatterND', [e.zerosLike(data), idx, g!], { reduction: 'add' })];
    // another axis (e.g. PyTorch's h[:, 0]): move it to the front, scatter there, move it back
    const r = (e.shapes.get(data) ?? e.staticShape(data))?.length;
    const q = (e.shapes.get(indices) ?? e.staticShape(indices))?.length;
    if (r === undefined || q === undefined) throw unsupported(node, 'a gather along an axis other than 0 needs known ranks');
    if (axis < 0) axis += r;
    const toFront = [axis, ...Array.from({ length: r }, (_, i) => i).filter((i) => i !== axis)];
    const back = toFront.map((_, i) => toFront.indexOf(i));
    // g is pre (axis dims) + indices dims (q) + post; ScatterND on the moved data wants indices dims + pre + post
    const gPerm = [
      ...Array.from({ length: q }, (_, i) => axis + i),
      ...Array.from({ length: axis }, (_, i) => i),
      ...Array.from({ length: r - axis - 1 }, (_, i) => axis + q + i),
    ];
    const moved = e.op('Transpose', [data], { perm: toFront });
    const scattered = e.op('ScatterND', [e.zerosLike(moved), idx, e.op('Transpose', [g!], { perm: gPerm })], { reduction: 'add' });
    return [e.op('Transpose', [scattered], { perm: back })];
  },
};

export const GRAD_RULES: Record<string, GradRule> = {
  Relu: relu,
  LeakyRelu: leakyRelu,
  Sigmoid: sigmoid,
  Tanh: tanh,
  Softplus: softplus,
  Exp: exp,
  Log: log,
  Sqrt: sqrt,
  Neg: neg,
  Reciprocal: reciprocal,
  Abs: abs,
  Sin: sin,
  Cos: cos,
  Erf: erf,
  Pow: pow,
  Identity: identity,
  Dropout: identity,
  Cast: castLike,
  CastLike: castLike,
  Clip: clip,
  Softmax: softmax,
  InstanceNormalization: instanceNorm,
  LogSoftmax: logSoftmax,
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Sum: sum,
  Where: where,
  MatMul: matMul,
  Gemm: gemm,
  Einsum: einsum,
  Conv: conv,
  ConvTranspose: convTranspose,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
  Resize: resize,
  ReduceSum: reduceSumOrMean(false),
  ReduceMean: reduceSumOrMean(true),
  Reshape: reshapeLike,
  Flatten: reshapeLike,
  Squeeze: reshapeLike,
  Unsqueeze: reshapeLike,
  Transpose: transpose,
  Expand: expand,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  Pad: pad,
};
