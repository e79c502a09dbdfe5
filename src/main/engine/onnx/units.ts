/**
 * Multi-node patterns the reverse sweep differentiates as one unit, because ONNX Runtime's CPU provider
 * fuses no elementwise chain: every op of a backward formula is one more pass over an activation-sized
 * tensor, and on a CPU those passes, not the FLOPs, are what a U-Net's backward spends beside its
 * convolutions. Each unit's backward is written with as few full-size passes as its formula allows;
 * interior nodes of a unit get no gradient of their own.
 */
import type { Emitter } from './emitter.js';
import { floatAttr, type OnnxGraph, type OnnxNode } from './ir.js';

/** How many nodes read each value, and the graph's outputs (values that must keep their own gradient). */
function consumers(nodes: OnnxNode[], graph: OnnxGraph): (v: string) => number {
  const uses = new Map<string, number>();
  for (const n of nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const o of graph.outputs) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
  return (v) => uses.get(v) ?? 0;
}

// ---- SiLU ----

export interface SiluUnit {
  x: string;
  /** σ(x), the forward's Sigmoid output */
  s: string;
}

/**
 * Mul(x, Sigmoid(x)) pairs (SiLU as exporters write it) whose Sigmoid output feeds nothing else,
 * keyed by the Mul.
 */
export function siluUnits(nodes: OnnxNode[], graph: OnnxGraph): Map<OnnxNode, SiluUnit> {
  const uses = consumers(nodes, graph);
  const sigmoidOf = new Map<string, string>();
  for (const n of nodes) if (n.opType === 'Sigmoid' && !n.domain) sigmoidOf.set(n.outputs[0]!, n.inputs[0]!);
  const units = new Map<OnnxNode, SiluUnit>();
  for (const n of nodes) {
    if (n.opType !== 'Mul' || n.domain || n.inputs.length !== 2) continue;
    const [a, b] = n.inputs as [string, string];
    const s = sigmoidOf.get(b) === a ? b : sigmoidOf.get(a) === b ? a : null;
    if (s && uses(s) === 1) units.set(n, { x: s === b ? a : b, s });
  }
  return units;
}

/**
 * SiLU y = x·σ(x): dy/dx = σ·(1 + x·(1 − σ)) = σ·(1 + x − y), from the forward's σ and y — four
 * elementwise passes with the product by g.
 */
export function siluVjp(e: Emitter, u: SiluUnit, y: string, g: string): string {
  const slope = e.op('Mul', [u.s, e.op('Add', [e.op('Sub', [u.x, y]), e.scalarLike(1, u.x)])]);
  return e.op('Mul', [g, slope]);
}

// ---- GroupNorm ----

export interface GroupNormUnit {
  x: string;
  gamma: string;
  beta: string;
  /** x̂ in x's layout: the Reshape of the InstanceNormalization's output back to [N, C, …] */
  xhat: string;
  groups: number;
  channels: number;
  rank: number;
  eps: number;
}

/**
 * GroupNorm as torch.onnx writes it (and as engine/nn/layers.ts builds it):
 *   Add(Mul(Reshape(InstanceNormalization(Reshape(x, [0, G, −1]), 1, 0), shape(x)), γ), β)
 * with γ and β of shape [C, 1, …] and every interior value read by the next node only; keyed by the Add.
 */
export function groupNormUnits(nodes: OnnxNode[], graph: OnnxGraph, e: Emitter): Map<OnnxNode, GroupNormUnit> {
  const shapes = e.shapes;
  const uses = consumers(nodes, graph);
  const made = (v: string, op: string) => {
    const p = e.producer(v);
    return p && p.opType === op && !p.domain && uses(v) === 1 ? p : undefined;
  };
  const units = new Map<OnnxNode, GroupNormUnit>();
  for (const add of nodes) {
    if (add.opType !== 'Add' || add.domain || add.inputs.length !== 2) continue;
    for (const k of [0, 1]) {
      const mul = made(add.inputs[k]!, 'Mul');
      if (!mul || mul.inputs.length !== 2) continue;
      const beta = add.inputs[1 - k]!;
      for (const j of [0, 1]) {
        const back = made(mul.inputs[j]!, 'Reshape');
        const gamma = mul.inputs[1 - j]!;
        const norm = back && made(back.inputs[0]!, 'InstanceNormalization');
        const grouped = norm && made(norm.inputs[0]!, 'Reshape');
        if (!back || !norm || !grouped) continue;
        const x = grouped.inputs[0]!;
        const xs = shapes.get(x);
        const target = e.constValues(grouped.inputs[1]);
        const scale = e.constValues(norm.inputs[1]);
        const bias = e.constValues(norm.inputs[2]);
        const C = xs?.[1];
        const G = target?.[1];
        const affineShape = (v: string) => {
          const s = e.staticShape(v) ?? shapes.get(v);
          return !!s && s.length === xs!.length - 1 && s[0] === C && s.slice(1).every((d) => d === 1);
        };
        if (
          !xs ||
          xs.length < 3 ||
          typeof C !== 'number' ||
          target?.length !== 3 ||
          target[0] !== 0 ||
          target[2] !== -1 ||
          typeof G !== 'number' ||
          G < 1 ||
          C % G !== 0 ||
          !scale?.every((v) => v === 1) ||
          !bias?.every((v) => v === 0) ||
          !affineShape(gamma) ||
          !affineShape(beta)
        )
          continue;
        units.set(add, {
          x,
          gamma,
          beta,
          xhat: back.outputs[0]!,
          groups: G,
          channels: C,
          rank: xs.length,
          eps: floatAttr(norm, 'epsilon', 1e-5),
        });
      }
    }
  }
  return units;
}

/**
 * The backward of y = γ·x̂ + β, x̂ = (x − μ_g)·r_g over each (item, group g), from g = ∂L/∂y:
 *   S = Σ_space g·x̂, T = Σ_space g (per item and channel);  dγ = Σ_n S, dβ = Σ_n T;
 *   m1 = mean_g(γ·g) = Σ_{c∈g} γ_c T / count, m2 = mean_g(γ·g·x̂) = Σ_{c∈g} γ_c S / count;
 *   dx = r·(γ·g − m1 − x̂·m2) = g·(r·γ) + (x̂·(−r·m2) + (−r·m1))
 * — per-channel sums first, so the group means come from [N, C] numbers, and dx is two products and
 * two Adds (ORT's Add broadcasts a per-channel constant faster than a three-input Sum): six full-size
 * passes (g·x̂, x̂·x, two products, two Adds) where the affine, InstanceNormalization and Reshape rules
 * one after another take eight. r from q = mean_g(x̂·x) (invStdFromMean).
 * (The same formula in a grouped [N, G, C/G, space] view, which needs no Expand, grew the trainer's
 * peak memory by a quarter in ORT's planner for no speed: measured 2026-11-29.)
 */
export function groupNormVjp(
  e: Emitter,
  u: GroupNormUnit,
  g: string,
  need: { x: boolean; gamma: boolean; beta: boolean },
): {
  x?: string;
  gamma?: string;
  beta?: string;
} {
  const space = e.i64(Array.from({ length: u.rank - 2 }, (_, i) => i + 2));
  const perChannel = (v: string) => e.op('ReduceSum', [v, space], { keepdims: 1 }); // [N, C, 1, …]
  const overItems = (v: string) => e.op('ReduceSum', [v, e.i64([0])], { keepdims: 0 }); // [C, 1, …] like γ
  const S = need.x || need.gamma ? perChannel(e.op('Mul', [g, u.xhat])) : undefined;
  const T = need.x || need.beta ? perChannel(g) : undefined;
  const out: { x?: string; gamma?: string; beta?: string } = {};
  if (need.gamma) out.gamma = overItems(S!);
  if (need.beta) out.beta = overItems(T!);
  if (!need.x) return out;
  const G = u.groups;
  const perGroup = u.channels / G;
  const ones = Array(u.rank - 2).fill(1) as number[];
  // per-item-and-channel [N, C, 1, …] → per-item-and-group sums [N, G, 1]
  const groupSum = (v: string) => e.op('ReduceSum', [e.op('Reshape', [v, e.i64([0, G, perGroup])]), e.i64([2])], { keepdims: 1 });
  // [N, G, 1] → [N, C, 1, …], each group's value on its channels
  const toChannels = (v: string) => e.op('Reshape', [e.op('Expand', [v, e.i64([1, 1, perGroup])]), e.i64([0, u.channels, ...ones])]);
  const xs = e.shapes.get(u.x);
  const area = xs?.slice(2).reduce<number | null>((a, d) => (a !== null && typeof d === 'number' ? a * d : null), 1) ?? null;
  // 1/count, count = C/G·|space|: a constant when the spatial dims are static
  const invCount =
    area === null
      ? e.op('Reciprocal', [
          e.op('CastLike', [e.op('Div', [e.op('Size', [u.x]), e.op('Mul', [e.shapeSlice(u.x, 0, 1), e.i64([G])])]), u.x]),
        ])
      : e.scalarLike(1 / (perGroup * area), u.x);
  const r = invStdFromMean(e, e.op('Mul', [groupSum(perChannel(e.op('Mul', [u.xhat, u.x]))), invCount]), u.eps, u.x); // [N, G, 1]
  const negRoverCount = e.op('Mul', [r, e.op('Neg', [invCount])]); // (ORT folds the Neg of a constant)
  const a = e.op('Mul', [toChannels(r), u.gamma]);
  const b = toChannels(e.op('Mul', [negRoverCount, groupSum(e.op('Mul', [S!, u.gamma]))])); // −r·m2
  const c = toChannels(e.op('Mul', [negRoverCount, groupSum(e.op('Mul', [T!, u.gamma]))])); // −r·m1
  out.x = e.op('Add', [e.op('Mul', [g, a]), e.op('Add', [e.op('Mul', [u.xhat, b]), c])]);
  return out;
}

/**
 * r = 1/√(σ² + ε) of a normalization from q = mean(x̂·x) = σ²·r, the product its backward has anyway
 * (no E[x²] − E[x]² cancellation): with v = σ² + ε, q = (v − ε)/√v, so √v = (q + √(q² + 4ε))/2 and
 * r = 2/(q + √(q² + 4ε)), a sum of positives.
 */
export function invStdFromMean(e: Emitter, q: string, eps: number, ref: string): string {
  const root = e.op('Sqrt', [e.op('Add', [e.op('Mul', [q, q]), e.scalarLike(4 * eps, ref)])]);
  return e.op('Div', [e.scalarLike(2, ref), e.op('Add', [q, root])]);
}
