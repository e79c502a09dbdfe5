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

export function inferShapes(graph: OnnxGraph, nodes: OnnxNode[]): Map<string, Shape> {
  const shapes = new Map<string, Shape>();
  const values = new Map<string, number[]>(); // small int64 constants (shapes, axes)
  const shapeSources = new Map<string, string>(); // Shape(v) outputs → v
  const constOf = (t: TensorData) =>
    t.dtype === 'int64' || t.dtype === 'int32' ? Array.from(t.data as ArrayLike<number | bigint>, Number) : null;
  for (const i of graph.inputs) if (i.shape) shapes.set(i.name, i.shape);
  const constFloats = new Map<string, number[]>(); // small float constants (Resize scales)
  for (const [k, t] of graph.initializers) {
    if (t.dtype === 'float32' && t.data.length <= 8) constFloats.set(k, Array.from(t.data as Float32Array));
    shapes.set(k, t.dims);
    const v = constOf(t);
    if (v && v.length <= 16) values.set(k, v);
  }
  const get = (v: string | undefined) => (v ? shapes.get(v) : undefined);
  for (const n of nodes) {
    const ins = n.inputs.map(get);
    const x = ins[0];
    let out: Shape | null | undefined;
    if (n.opType === 'Constant') {
      const a = n.attrs['value'];
      if (a?.type === 'tensor') {
        out = a.value.dims;
        const v = constOf(a.value);
        if (v) values.set(n.outputs[0]!, v);
      }
    } else if (SAME.has(n.opType)) out = x;
    else if (ELEMENTWISE.has(n.opType)) out = ins.every(Boolean) ? broadcastShapes(ins as Shape[]) : null;
    else if (n.opType === 'Size') out = [];
    else if (n.opType === 'Shape') {
      if (x && !n.attrs['start'] && !n.attrs['end']) {
        out = [x.length];
        values.delete(n.outputs[0]!);
        shapeSources.set(n.outputs[0]!, n.inputs[0]!);
      }
    } else if (n.opType === 'Conv' && x && ins[1]) {
      const w = ins[1];
      const sp = x.length - 2;
      const k = attrInts(n, 'kernel_shape') ?? (w.slice(2) as number[]);
      const s = attrInts(n, 'strides') ?? Array(sp).fill(1);
      const p = attrInts(n, 'pads') ?? Array(2 * sp).fill(0);
      const d = attrInts(n, 'dilations') ?? Array(sp).fill(1);
      const auto = n.attrs['auto_pad'];
      if (!auto || (auto.type === 'string' && auto.value === 'NOTSET')) {
        out = [
          x[0]!,
          w[0]!,
          ...x
            .slice(2)
            .map((h, i) =>
              typeof h === 'number' && typeof k[i] === 'number'
                ? Math.floor((h + p[i]! + p[i + sp]! - d[i]! * (k[i]! - 1) - 1) / s[i]!) + 1
                : null,
            ),
        ];
      }
    } else if (n.opType === 'Gemm' && x && ins[1]) {
      const a = attrInt(n, 'transA', 0) ? [x[1]!, x[0]!] : x;
      const b = attrInt(n, 'transB', 0) ? [ins[1][1]!, ins[1][0]!] : ins[1];
      out = [a[0]!, b[1]!];
    } else if (n.opType === 'GlobalAveragePool' && x) out = [x[0]!, x[1]!, ...x.slice(2).map(() => 1)];
    else if (n.opType === 'Flatten' && x) {
      const axis = attrInt(n, 'axis', 1);
      const prod = (s: Shape) => (s.every((d) => typeof d === 'number') ? (s as number[]).reduce((a, b) => a * b, 1) : null);
      out = [axis === 0 ? 1 : axis === 1 ? x[0]! : prod(x.slice(0, axis)), prod(x.slice(axis))];
    } else if (n.opType === 'Unsqueeze' && x) {
      const axes = values.get(n.inputs[1] ?? '') ?? attrInts(n, 'axes');
      if (axes) {
        const rank = x.length + axes.length;
        const norm = axes.map((a) => (a < 0 ? a + rank : a));
        const o: Shape = [];
        let j = 0;
        for (let i = 0; i < rank; i++) o.push(norm.includes(i) ? 1 : x[j++]!);
        out = o;
      }
    } else if (n.opType === 'MatMul' && x && ins[1]) {
      const b = ins[1];
      if (x.length >= 2 && b.length >= 2) {
        const batch = broadcastShapes([x.slice(0, -2), b.slice(0, -2)]);
        if (batch) out = [...batch, x[x.length - 2]!, b[b.length - 1]!];
      }
    } else if (n.opType === 'Resize' && x) {
      const scales = constFloats.get(n.inputs[2] ?? '');
      if (scales && scales.length === x.length)
        out = x.map((d, i) => (scales[i] === 1 ? d : typeof d === 'number' ? Math.floor(d * scales[i]!) : null));
    } else if (n.opType === 'Reshape') {
      const src = shapeSources.get(n.inputs[1] ?? '');
      const target = values.get(n.inputs[1] ?? '');
      if (src && shapes.get(src)) out = shapes.get(src);
      // the input's shape unknown, the target constant: the rank and the explicit sizes are known
      else if (target && !x) out = target.map((d) => (d > 0 ? d : null));
      else if (target && x) {
        const o: Shape = target.map((d, i) => (d === 0 ? (x[i] ?? null) : d === -1 ? null : d));
        const minus = target.indexOf(-1);
        if (minus >= 0) {
          // the -1 dim: x's elements not carried over by 0s, over the target's explicit sizes
          const rest = x.filter((_, i) => !(i < target.length && target[i] === 0));
          const explicit = target.filter((d) => d > 0);
          if (rest.every((d) => typeof d === 'number')) {
            o[minus] = (rest as number[]).reduce((a, b) => a * b, 1) / explicit.reduce((a, b) => a * b, 1);
          }
        }
        out = o;
      } else if (!target && typeof ins[1]?.[0] === 'number') out = Array(ins[1][0]).fill(null); // a computed target: only its length
    } else if (n.opType === 'Pad' && x) {
      const pads = values.get(n.inputs[1] ?? '') ?? attrInts(n, 'pads');
      if (pads && pads.length === 2 * x.length && !n.inputs[3])
        out = x.map((d, i) =>
          typeof d === 'number' ? d + pads[i]! + pads[i + x.length]! : pads[i] === 0 && pads[i + x.length] === 0 ? d : null,
        );
      else out = x.map(() => null);
    } else if ((n.opType === 'AveragePool' || n.opType === 'MaxPool') && x) {
      const k = attrInts(n, 'kernel_shape');
      const sp = x.length - 2;
      const s = attrInts(n, 'strides') ?? Array(sp).fill(1);
      const p = attrInts(n, 'pads') ?? Array(2 * sp).fill(0);
      const auto = n.attrs['auto_pad'];
      const ceil = attrInt(n, 'ceil_mode', 0) === 1;
      if (k && (!auto || (auto.type === 'string' && auto.value === 'NOTSET')))
        out = [
          x[0]!,
          x[1]!,
          ...x.slice(2).map((h, i) => {
            if (typeof h !== 'number') return null;
            const v = (h + p[i]! + p[i + sp]! - k[i]!) / s[i]!;
            return (ceil ? Math.ceil(v) : Math.floor(v)) + 1;
          }),
        ];
      else out = x.map((d, i) => (i < 2 ? d : null));
    } else if ((n.opType === 'ReduceSum' || n.opType === 'ReduceMean') && x) {
      const axes = attrInts(n, 'axes') ?? values.get(n.inputs[1] ?? '') ?? (n.inputs[1] ? null : x.map((_, i) => i));
      if (axes) {
        const norm = axes.map((a) => (a < 0 ? a + x.length : a));
        const keep = attrInt(n, 'keepdims', 1) === 1;
        out = keep ? x.map((d, i) => (norm.includes(i) ? 1 : d)) : x.filter((_, i) => !norm.includes(i));
      }
    } else if (n.opType === 'Transpose' && x) {
      const perm = attrInts(n, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      out = perm.map((p) => x[p]!);
    } else if (n.opType === 'Concat' && ins.every(Boolean)) {
      const axis = attrInt(n, 'axis', 0);
      const r = (ins[0] as Shape).length;
      const a = axis < 0 ? axis + r : axis;
      out = (ins[0] as Shape).map((d, i) => {
        if (i !== a) return d;
        const ds = ins.map((s) => s![i]);
        return ds.every((v) => typeof v === 'number') ? (ds as number[]).reduce((p, q) => p + q, 0) : null;
      });
    } else if (n.opType === 'Slice' && x) {
      // rank kept; the sliced axes' sizes only when starts/ends/axes are constants
      const [st, en, ax, sp] = [2, 3, 4, 5].map((i) => (n.inputs[i - 1] ? values.get(n.inputs[i - 1]!) : undefined));
      const axes = n.inputs[3] ? ax : x.map((_, i) => i);
      const o: Shape = [...x];
      if (!axes) o.fill(null);
      else
        axes.forEach((a0, k) => {
          const a = a0 < 0 ? a0 + x.length : a0;
          const d = x[a];
          const step = n.inputs[4] ? sp?.[k] : 1;
          if (typeof d !== 'number' || !st || !en || !step) return void (o[a] = null);
          // ONNX Slice: negative indices count from the end; start clamped to [0, d] going forward and to
          // [0, d − 1] going back, end to [0, d] and [−1, d − 1]
          const hi = step > 0 ? d : d - 1;
          const clamp = (v: number, lo: number) => Math.max(lo, Math.min(hi, v < 0 ? v + d : v));
          o[a] = Math.max(0, Math.ceil((clamp(en[k]!, step > 0 ? 0 : -1) - clamp(st[k]!, 0)) / step));
        });
      out = o;
    } else if (n.opType === 'Gather' && x && ins[1]) {
      const axis = attrInt(n, 'axis', 0);
      const a = axis < 0 ? axis + x.length : axis;
      out = [...x.slice(0, a), ...ins[1], ...x.slice(a + 1)];
    } else if (n.opType === 'Einsum' && ins.every(Boolean)) {
      const eq = n.attrs['equation'];
      if (eq?.type === 'string' && !eq.value.includes('...') && eq.value.includes('->')) {
        const [lhs, rhs] = eq.value.replace(/\s/g, '').split('->') as [string, string];
        const dimOf = new Map<string, Dim>();
        lhs.split(',').forEach((term, i) => [...term].forEach((c, j) => dimOf.set(c, ins[i]![j] ?? null)));
        out = [...rhs].map((c) => dimOf.get(c) ?? null);
      }
    }
    if (out) shapes.set(n.outputs[0]!, out);
    if (n.opType === 'Split' && x) {
      const sizes = values.get(n.inputs[1] ?? '') ?? attrInts(n, 'split');
      const axis = attrInt(n, 'axis', 0);
      const a = axis < 0 ? axis + x.length : axis;
      if (sizes)
        n.outputs.forEach((o, i) =>
          shapes.set(
            o,
            x.map((d, k) => (k === a ? sizes[i]! : d)),
          ),
        );
    }
  }
  return shapes;
}

export function sameShape(a: Shape | undefined, b: Shape | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d !== null && d === b[i]);
}
