/**
 * Static shape inference for the ops the differentiator meets most, with symbolic dims
 * ("N") kept as strings and unknowns as null. It only has to be right where it answers:
 * the differentiator uses it to skip run-time broadcasting work when shapes are known equal.
 */
import type { Dim, OnnxGraph, OnnxNode, TensorData } from './ir.js';

export type Shape = Dim[];

function attrInt(n: OnnxNode, name: string, dflt: number): number {
  const a = n.attrs[name];
  return a?.type === 'int' ? a.value : dflt;
}
function attrInts(n: OnnxNode, name: string): number[] | null {
  const a = n.attrs[name];
  return a?.type === 'ints' ? a.value : null;
}

export function broadcastShapes(shapes: Shape[]): Shape | null {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const k = i - (rank - s.length);
      const d = k >= 0 ? s[k]! : 1; // a null dim is unknown, not 1
      if (d === 1) continue;
      if (dim === 1) dim = d;
      else if (d === null || dim === null) dim = null;
      else if (d !== dim) return null; // unknowable statically (or an invalid graph)
    }
    out.push(dim);
  }
  return out;
}

const ELEMENTWISE = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Where',
  'Sum',
  'Max',
  'Min',
  'Equal',
  'Greater',
  'Less',
  'GreaterOrEqual',
  'LessOrEqual',
  'And',
  'Or',
  'PRelu',
]);
const SAME = new Set([
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'Softplus',
  'Exp',
  'Log',
  'Sqrt',
  'Neg',
  'Reciprocal',
  'Abs',
  'Sin',
  'Cos',
  'Erf',
  'Identity',
  'Dropout',
  'Cast',
  'CastLike',
  'Clip',
  'Softmax',
  'LogSoftmax',
  'InstanceNormalization',
  'GroupNormalization',
  'LayerNormalization',
  'BatchNormalization',
  'Not',
  'Sign',
  'Floor',
  'Ceil',
  'Round',
]);

/** What a shape rule may read besides its node's input shapes: constants and where Shape outputs came from. */
interface ShapeContext {
  shapes: Map<string, Shape>;
  /** small int64/int32 constants (shapes, axes) */
  values: Map<string, number[]>;
  /** small float constants (Resize scales) */
  floats: Map<string, number[]>;
  /** Shape(v) outputs → v */
  shapeSources: Map<string, string>;
}
/** The first output's shape from the input shapes (undefined: not known); may record constants in the context. */
type ShapeRule = (n: OnnxNode, ins: (Shape | undefined)[], c: ShapeContext) => Shape | null | undefined;

const intsOf = (t: TensorData) =>
  t.dtype === 'int64' || t.dtype === 'int32' ? Array.from(t.data as ArrayLike<number | bigint>, Number) : null;
const explicitPads = (n: OnnxNode) => {
  const auto = n.attrs['auto_pad'];
  return !auto || (auto.type === 'string' && auto.value === 'NOTSET');
};
const normAxis = (a: number, rank: number) => (a < 0 ? a + rank : a);
const product = (s: Shape) => (s.every((d) => typeof d === 'number') ? (s as number[]).reduce((a, b) => a * b, 1) : null);

/** The output size of a window op along one axis (Conv's dilation d; pooling's ceil mode). */
function windowOut(h: Dim, k: number, s: number, padSum: number, d = 1, ceil = false): Dim {
  if (typeof h !== 'number') return null;
  const v = (h + padSum - d * (k - 1) - 1) / s;
  return (ceil ? Math.ceil(v) : Math.floor(v)) + 1;
}

/** The -1 entry of a Reshape target: x's elements not carried over by 0s, over the target's explicit sizes. */
function reshapeTarget(x: Shape, target: number[]): Shape {
  const o: Shape = target.map((d, i) => (d === 0 ? (x[i] ?? null) : d === -1 ? null : d));
  const minus = target.indexOf(-1);
  if (minus >= 0) {
    const rest = x.filter((_, i) => !(i < target.length && target[i] === 0));
    const explicit = target.filter((d) => d > 0);
    if (rest.every((d) => typeof d === 'number'))
      o[minus] = (rest as number[]).reduce((a, b) => a * b, 1) / explicit.reduce((a, b) => a * b, 1);
  }
  return o;
}

/** ONNX Slice along one axis: negative indices count from the end; start clamped to [0, d] going forward and
 * to [0, d − 1] going back, end to [0, d] and [−1, d − 1]. */
function sliceLength(d: number, start: number, end: number, step: number): number {
  const hi = step > 0 ? d : d - 1;
  const clamp = (v: number, lo: number) => Math.max(lo, Math.min(hi, v < 0 ? v + d : v));
  return Math.max(0, Math.ceil((clamp(end, step > 0 ? 0 : -1) - clamp(start, 0)) / step));
}

const SHAPE_RULES: Record<string, ShapeRule> = {
  Constant: (n, _ins, c) => {
    const a = n.attrs['value'];
    if (a?.type !== 'tensor') return undefined;
    const v = intsOf(a.value);
    if (v) c.values.set(n.outputs[0]!, v);
    return a.value.dims;
  },
  Size: () => [],
  Conv: (n, [x, w]) => {
    if (!x || !w || !explicitPads(n)) return undefined;
    const sp = x.length - 2;
    const k = attrInts(n, 'kernel_shape') ?? (w.slice(2) as number[]);
    const s = attrInts(n, 'strides') ?? Array(sp).fill(1);
    const p = attrInts(n, 'pads') ?? Array(2 * sp).fill(0);
    const d = attrInts(n, 'dilations') ?? Array(sp).fill(1);
    return [
      x[0]!,
      w[0]!,
      ...x.slice(2).map((h, i) => (typeof k[i] === 'number' ? windowOut(h, k[i]!, s[i]!, p[i]! + p[i + sp]!, d[i]!) : null)),
    ];
  },
  Gemm: (n, [x, w]) => {
    if (!x || !w) return undefined;
    const a = attrInt(n, 'transA', 0) ? [x[1]!, x[0]!] : x;
    const b = attrInt(n, 'transB', 0) ? [w[1]!, w[0]!] : w;
    return [a[0]!, b[1]!];
  },
  GlobalAveragePool: (_n, [x]) => x && [x[0]!, x[1]!, ...x.slice(2).map(() => 1)],
  Flatten: (n, [x]) => {
    if (!x) return undefined;
    const axis = attrInt(n, 'axis', 1);
    return [axis === 0 ? 1 : axis === 1 ? x[0]! : product(x.slice(0, axis)), product(x.slice(axis))];
  },
  Unsqueeze: (n, [x], c) => {
    const axes = c.values.get(n.inputs[1] ?? '') ?? attrInts(n, 'axes');
    if (!x || !axes) return undefined;
    const rank = x.length + axes.length;
    const norm = axes.map((a) => normAxis(a, rank));
    let j = 0;
    return Array.from({ length: rank }, (_, i) => (norm.includes(i) ? 1 : x[j++]!));
  },
  MatMul: (_n, [x, b]) => {
    if (!x || !b || x.length < 2 || b.length < 2) return undefined;
    const batch = broadcastShapes([x.slice(0, -2), b.slice(0, -2)]);
    return batch && [...batch, x[x.length - 2]!, b[b.length - 1]!];
  },
  Resize: (n, [x], c) => {
    const scales = c.floats.get(n.inputs[2] ?? '');
    if (!x || !scales || scales.length !== x.length) return undefined;
    return x.map((d, i) => (scales[i] === 1 ? d : typeof d === 'number' ? Math.floor(d * scales[i]!) : null));
  },
  Reshape: (n, [x, t], c) => {
    const src = c.shapeSources.get(n.inputs[1] ?? '');
    const target = c.values.get(n.inputs[1] ?? '');
    if (src && c.shapes.get(src)) return c.shapes.get(src);
    // the input's shape unknown, the target constant: the rank and the explicit sizes are known
    if (target && !x) return target.map((d) => (d > 0 ? d : null));
    if (target && x) return reshapeTarget(x, target);
    if (typeof t?.[0] === 'number') return Array(t[0]).fill(null); // a computed target: only its length
    return undefined;
  },
  Pad: (n, [x], c) => {
    if (!x) return undefined;
    const pads = c.values.get(n.inputs[1] ?? '') ?? attrInts(n, 'pads');
    if (!pads || pads.length !== 2 * x.length || n.inputs[3]) return x.map(() => null);
    const r = x.length;
    return x.map((d, i) => (typeof d === 'number' ? d + pads[i]! + pads[i + r]! : pads[i] === 0 && pads[i + r] === 0 ? d : null));
  },
  AveragePool: (n, [x]) => {
    if (!x) return undefined;
    const k = attrInts(n, 'kernel_shape');
    if (!k || !explicitPads(n)) return x.map((d, i) => (i < 2 ? d : null));
    const sp = x.length - 2;
    const s = attrInts(n, 'strides') ?? Array(sp).fill(1);
    const p = attrInts(n, 'pads') ?? Array(2 * sp).fill(0);
    const ceil = attrInt(n, 'ceil_mode', 0) === 1;
    return [x[0]!, x[1]!, ...x.slice(2).map((h, i) => windowOut(h, k[i]!, s[i]!, p[i]! + p[i + sp]!, 1, ceil))];
  },
  ReduceSum: (n, [x], c) => {
    if (!x) return undefined;
    const axes = attrInts(n, 'axes') ?? c.values.get(n.inputs[1] ?? '') ?? (n.inputs[1] ? null : x.map((_, i) => i));
    if (!axes) return undefined;
    const norm = axes.map((a) => normAxis(a, x.length));
    return attrInt(n, 'keepdims', 1) === 1 ? x.map((d, i) => (norm.includes(i) ? 1 : d)) : x.filter((_, i) => !norm.includes(i));
  },
  Transpose: (n, [x]) => x && (attrInts(n, 'perm') ?? x.map((_, i) => x.length - 1 - i)).map((p) => x[p]!),
  Concat: (n, ins) => {
    if (!ins.every(Boolean)) return undefined;
    const first = ins[0]!;
    const a = normAxis(attrInt(n, 'axis', 0), first.length);
    return first.map((d, i) => {
      if (i !== a) return d;
      const ds = ins.map((s) => s![i]);
      return ds.every((v) => typeof v === 'number') ? (ds as number[]).reduce((p, q) => p + q, 0) : null;
    });
  },
  Slice: (n, [x], c) => {
    if (!x) return undefined;
    // rank kept; the sliced axes' sizes only when starts/ends/axes are constants
    const [st, en, ax, sp] = [1, 2, 3, 4].map((i) => (n.inputs[i] ? c.values.get(n.inputs[i]!) : undefined));
    const axes = n.inputs[3] ? ax : x.map((_, i) => i);
    const o: Shape = [...x];
    if (!axes) return o.fill(null);
    axes.forEach((a0, k) => {
      const a = normAxis(a0, x.length);
      const d = x[a];
      const step = n.inputs[4] ? sp?.[k] : 1;
      o[a] = typeof d === 'number' && st && en && step ? sliceLength(d, st[k]!, en[k]!, step) : null;
    });
    return o;
  },
  Gather: (n, [x, idx]) => {
    if (!x || !idx) return undefined;
    const a = normAxis(attrInt(n, 'axis', 0), x.length);
    return [...x.slice(0, a), ...idx, ...x.slice(a + 1)];
  },
  Einsum: (n, ins) => {
    const eq = n.attrs['equation'];
    if (!ins.every(Boolean) || eq?.type !== 'string' || eq.value.includes('...') || !eq.value.includes('->')) return undefined;
    const [lhs, rhs] = eq.value.replace(/\s/g, '').split('->') as [string, string];
    const dimOf = new Map<string, Dim>();
    lhs.split(',').forEach((term, i) => [...term].forEach((ch, j) => dimOf.set(ch, ins[i]![j] ?? null)));
    return [...rhs].map((ch) => dimOf.get(ch) ?? null);
  },
};
SHAPE_RULES['MaxPool'] = SHAPE_RULES['AveragePool']!;
SHAPE_RULES['ReduceMean'] = SHAPE_RULES['ReduceSum']!;

/** Every output of Split along its axis, by its constant sizes. */
function splitShapes(n: OnnxNode, x: Shape, c: ShapeContext): void {
  const sizes = c.values.get(n.inputs[1] ?? '') ?? attrInts(n, 'split');
  if (!sizes) return;
  const a = normAxis(attrInt(n, 'axis', 0), x.length);
  n.outputs.forEach((o, i) =>
    c.shapes.set(
      o,
      x.map((d, k) => (k === a ? sizes[i]! : d)),
    ),
  );
}

/** Static shapes of a graph's values where the inputs, initializers and a table of per-op rules fix them. */
export function inferShapes(graph: OnnxGraph, nodes: OnnxNode[]): Map<string, Shape> {
  const c: ShapeContext = { shapes: new Map(), values: new Map(), floats: new Map(), shapeSources: new Map() };
  for (const i of graph.inputs) if (i.shape) c.shapes.set(i.name, i.shape);
  for (const [k, t] of graph.initializers) {
    if (t.dtype === 'float32' && t.data.length <= 8) c.floats.set(k, Array.from(t.data as Float32Array));
    c.shapes.set(k, t.dims);
    const v = intsOf(t);
    if (v && v.length <= 16) c.values.set(k, v);
  }
  for (const n of nodes) {
    const ins = n.inputs.map((v) => (v ? c.shapes.get(v) : undefined));
    const x = ins[0];
    let out: Shape | null | undefined;
    if (SAME.has(n.opType)) out = x;
    else if (ELEMENTWISE.has(n.opType)) out = ins.every(Boolean) ? broadcastShapes(ins as Shape[]) : null;
    else if (n.opType === 'Shape') out = shapeOfShape(n, x, c);
    else out = SHAPE_RULES[n.opType]?.(n, ins, c);
    if (out) c.shapes.set(n.outputs[0]!, out);
    if (n.opType === 'Split' && x) splitShapes(n, x, c);
  }
  return c.shapes;
}

/** Shape(v) without start/end: a 1-D tensor of v's rank, remembered as v's shape for a later Reshape. */
function shapeOfShape(n: OnnxNode, x: Shape | undefined, c: ShapeContext): Shape | undefined {
  if (!x || n.attrs['start'] || n.attrs['end']) return undefined;
  c.values.delete(n.outputs[0]!);
  c.shapeSources.set(n.outputs[0]!, n.inputs[0]!);
  return [x.length];
}

export function sameShape(a: Shape | undefined, b: Shape | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d !== null && d === b[i]);
}
