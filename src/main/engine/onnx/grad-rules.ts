/**
 * Vector–Jacobian products for ONNX operators, written with standard ONNX ops only
 * (default domain, opset ≥ 17), so any ONNX Runtime build and execution provider runs them.
 * Each rule gets the node and the gradients of its outputs and returns one gradient (or
 * undefined) per input slot it was asked for. Convolutions, pooling and resizing are in grad-rules-conv.ts, matrix products in grad-rules-linalg.ts;
 * GRAD_RULES lists every rule by op type.
 */
import { perChannel } from './decompose.js';
import { invStdFromMean } from './units.js';
import type { Emitter } from './emitter.js';
import { first, unary, unsupported, type GradRule, type Grads } from './grad-rule.js';
import { CONV_RULES } from './grad-rules-conv.js';
import { LINALG_RULES } from './grad-rules-linalg.js';
import { floatAttr as flt, intAttr as int, intsAttr as ints, strAttr as str, type OnnxNode } from './ir.js';

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
    // a whole-axis reversal (starts −1, ends past the front, steps −1; a flipped kernel): its own inverse
    const [s0, e0] = [e.constValues(starts), e.constValues(ends)];
    const reversal = steps?.every((k) => k === -1) && s0?.every((v) => v === -1) && e0?.every((v) => v <= -(2 ** 31));
    if (reversal) return [e.op('Slice', [g!, starts, ends, ...(axesIn ? [axesIn] : [e.i64(s0!.map((_, i) => i))]), stepsIn!])];
    if (stepsIn && (!steps || steps.some((s) => s !== 1)))
      throw unsupported(node, 'only steps of 1 (or a whole-axis reversal) are supported');
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
    if (axesIn) throw unsupported(node, 'padding some axes only (an axes input) is not supported');
    if (!pads) {
      // pads computed in the graph (a slice's own gradient, differentiated again): ≥ 0 by construction there
      // (a known rank as constants: ORT's shape inference rejects the computed form when it knows the shapes)
      const r = (e.shapes.get(x) ?? e.staticShape(x))?.length;
      const rank = r === undefined ? e.rank(x) : null;
      const begin = e.op('Slice', [padsIn, e.i64([0]), rank ? e.op('Unsqueeze', [rank, e.i64([0])]) : e.i64([r!])]);
      const axes = rank ? e.op('Range', [e.i64Scalar(0), rank, e.i64Scalar(1)]) : e.i64(Array.from({ length: r! }, (_, i) => i));
      return [e.op('Slice', [g!, begin, e.op('Add', [begin, e.shape(x)]), axes])];
    }
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
  ...LINALG_RULES,
  ...CONV_RULES,
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
