/**
 * Rewrites normalization ops into primitive ONNX ops (ReduceSum, Sub, Mul, Sqrt, …) so
 * the differentiator needs rules only for primitives. Applied only to nodes on the path
 * being differentiated; the rest of the graph keeps ORT's fused kernels.
 */
import type { Emitter } from './emitter.js';
import { intAttr as int, type OnnxNode } from './ir.js';

export const DECOMPOSABLE = new Set(['InstanceNormalization', 'GroupNormalization', 'LayerNormalization', 'BatchNormalization']);

const float = (node: OnnxNode, name: string, dflt: number) => {
  const a = node.attrs[name];
  return a?.type === 'float' ? a.value : dflt;
};

/** (x - mean) / sqrt(var + eps) over `axes` (a 1-D int64 value), with keepdims. */
function normalize(e: Emitter, x: string, axes: string, eps: number): string {
  const count = e.op('CastLike', [e.op('Div', [e.op('Size', [x]), e.op('Size', [e.op('ReduceSum', [x, axes], { keepdims: 1 })])]), x]);
  const mean = e.op('Div', [e.op('ReduceSum', [x, axes], { keepdims: 1 }), count]);
  const d = e.op('Sub', [x, mean]);
  const variance = e.op('Div', [e.op('ReduceSum', [e.op('Mul', [d, d]), axes], { keepdims: 1 }), count]);
  return e.op('Div', [d, e.op('Sqrt', [e.op('Add', [variance, e.scalarLike(eps, x)])])]);
}

/** Reshape a per-channel vector [C] to [C, 1, …, 1] for an input of x's rank. */
export function perChannel(e: Emitter, v: string, x: string): string {
  const rank = e.shapes.get(x)?.length;
  if (rank !== undefined) return e.op('Reshape', [v, e.i64([-1, ...Array(rank - 2).fill(1)])]);
  const ones = e.op('ConstantOfShape', [e.op('Unsqueeze', [e.op('Sub', [e.rank(x), e.i64Scalar(2)]), e.i64([0])])], {
    value: { type: 'tensor', value: { dtype: 'int64', dims: [1], data: BigInt64Array.from([1n]) } },
  });
  return e.op('Reshape', [v, e.op('Concat', [e.i64([-1]), ones], { axis: 0 })]);
}

/** Axes from `start` to the last, as a 1-D int64 value (a constant when x's rank is known). */
function axesFrom(e: Emitter, x: string, start: number | string): string {
  const rank = e.shapes.get(x)?.length;
  if (rank !== undefined && typeof start === 'number') return e.i64(Array.from({ length: rank - start }, (_, i) => i + start));
  const s = typeof start === 'number' ? e.i64Scalar(start) : start;
  return e.op('Range', [s, e.rank(x), e.i64Scalar(1)]);
}

/** Emit the decomposition of `node`; its outputs keep their names. */
export function decompose(e: Emitter, node: OnnxNode, opset: number): void {
  const out = node.outputs[0]!;
  const [x, a, b] = node.inputs as [string, string | undefined, string | undefined];
  const eps = float(node, 'epsilon', 1e-5);
  const affine = (xhat: string, scale: string | undefined, bias: string | undefined, shape: (v: string) => string) => {
    let y = scale ? e.op('Mul', [xhat, shape(scale)]) : xhat;
    if (bias) y = e.op('Add', [y, shape(bias)]);
    return y;
  };
  switch (node.opType) {
    case 'InstanceNormalization': {
      const y = affine(normalize(e, x, axesFrom(e, x, 2), eps), a, b, (v) => perChannel(e, v, x));
      e.op('Identity', [y], {}, out);
      return;
    }
    case 'BatchNormalization': {
      if (node.outputs.filter(Boolean).length > 1 || int(node, 'training_mode', 0)) {
        throw new Error(`cannot differentiate BatchNormalization node "${node.name}" in training mode; export the model in eval mode`);
      }
      const [, scale, bias, mean, variance] = node.inputs as string[];
      const inv = e.op('Div', [perChannel(e, scale!, x), e.op('Sqrt', [e.op('Add', [perChannel(e, variance!, x), e.scalarLike(eps, x)])])]);
      e.op('Add', [e.op('Mul', [e.op('Sub', [x, perChannel(e, mean!, x)]), inv]), perChannel(e, bias!, x)], {}, out);
      return;
    }
    case 'LayerNormalization': {
      if (node.outputs.filter(Boolean).length > 1)
        throw new Error(`LayerNormalization node "${node.name}": its Mean/InvStdDev outputs are not supported`);
      const axis = int(node, 'axis', -1);
      const rank = e.shapes.get(x)?.length;
      const start = axis >= 0 ? axis : rank !== undefined ? rank + axis : e.op('Add', [e.rank(x), e.i64Scalar(axis)]);
      const y = affine(normalize(e, x, axesFrom(e, x, start), eps), a, b, (v) => v);
      e.op('Identity', [y], {}, out);
      return;
    }
    case 'GroupNormalization': {
      const groups = int(node, 'num_groups', 0);
      if (groups <= 0) throw new Error(`GroupNormalization node "${node.name}" has no num_groups`);
      const grouped = e.op('Reshape', [x, e.op('Concat', [e.shapeSlice(x, 0, 1), e.i64([groups, -1])], { axis: 0 })]);
      const xhat = normalize(e, grouped, e.i64([2]), eps);
      if (opset >= 21) {
        const back = e.op('Reshape', [xhat, e.shape(x)]);
        e.op('Identity', [affine(back, a, b, (v) => perChannel(e, v, x))], {}, out);
      } else {
        // opsets 18–20: scale and bias are per group
        const perGroup = (v: string) => e.op('Reshape', [v, e.i64([-1, 1])]);
        e.op('Reshape', [affine(xhat, a, b, perGroup), e.shape(x)], {}, out);
      }
      return;
    }
  }
  throw new Error(`no decomposition for ${node.opType}`);
}
