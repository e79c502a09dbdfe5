import { describe, expect, it } from 'vitest';
import type { GraphBuilder } from '../../src/main/engine/onnx/builder.js';
import { gradient } from '../../src/main/engine/onnx/autodiff.js';
import { float, parseModel, serializeModel, tensorData, type Dim, type DType, type OnnxModel } from '../../src/main/engine/onnx/ir.js';
import { Rng } from '../../src/main/engine/rng.js';
import { checkGradient, randomFeed, type CheckOptions, type Feed } from '../helpers/gradcheck.js';

/**
 * Every op's gradient against central finite differences of L = Σ y·R.
 *
 * float64 (where ORT has float64 kernels): h = 1e-5 gives truncation error ~h²·|f'''| ≈ 1e-10
 * and rounding error ~1e-16·|L|/h ≈ 1e-10, so 1e-6 relative is a safe bound.
 * float32 (Conv, pooling, Erf, normalizations: CPU kernels are float32 only): the best step
 * balances rounding ε·|L|/h (ε ≈ 6e-8, |L| ≲ 50) against truncation h²·|f'''|; h = 1e-2 gives
 * both ≲ 3e-4, so we allow 3e-3 absolute + 2 % relative.
 */
const F64: CheckOptions = { h: 1e-5, atol: 1e-8, rtol: 1e-6 };
const F32: CheckOptions = { h: 1e-2, atol: 3e-3, rtol: 2e-2 };

type Build = (g: GraphBuilder) => void;
const model =
  (
    inputs: Record<string, Feed>,
    body: (g: GraphBuilder, x: Record<string, string>) => string,
    outDtype: DType,
    declared: Record<string, Dim[] | null> = {},
  ) =>
  (g: GraphBuilder): OnnxModel => {
    const names: Record<string, string> = {};
    for (const [k, f] of Object.entries(inputs)) names[k] = g.input(k, f.dtype, k in declared ? declared[k]! : f.shape);
    g.identity(body(g, names), 'y');
    g.output('y', outDtype, null);
    return g.build();
  };
void (0 as unknown as Build);

const rng = new Rng(2024);
const f64 = (shape: number[], o: { min?: number; away?: number } = {}) => randomFeed(rng, 'float64', shape, o);
const f32 = (shape: number[], o: { min?: number; away?: number } = {}) => randomFeed(rng, 'float32', shape, o);

interface Case {
  name: string;
  inputs: Record<string, Feed>;
  wrt?: string[];
  body: (g: GraphBuilder, x: Record<string, string>) => string;
  opts: CheckOptions;
  opset?: number;
  /** input shapes as the graph declares them, where not the fed ones (symbolic dims) */
  declared?: Record<string, Dim[] | null>;
}

/** GroupNorm over 2 groups of [2, 4, 3, 3] as torch.onnx exports it, with InstanceNormalization's ε. */
function torchGroupNorm(name: string, epsilon: number): Case {
  return {
    name,
    inputs: { x: f32([2, 4, 3, 3]), s: f32([4, 1, 1]), b: f32([4, 1, 1]) },
    body: (g, x) => {
      const grouped = g.op('Reshape', [x.x!, g.int64s([0, 2, -1])]);
      const normed = g.op(
        'InstanceNormalization',
        [grouped, g.constant(tensorData('float32', [2], [1, 1])), g.constant(tensorData('float32', [2], [0, 0]))],
        { epsilon: float(epsilon) },
      );
      const back = g.op('Reshape', [normed, g.op('Shape', [x.x!])]);
      return g.op('Add', [g.op('Mul', [back, x.s!]), x.b!]);
    },
    opts: F32,
  };
}

const cases: Case[] = [
  // broadcasting binary ops
  { name: 'Add [2,3,4] + [3,1]', inputs: { a: f64([2, 3, 4]), b: f64([3, 1]) }, body: (g, x) => g.op('Add', [x.a!, x.b!]), opts: F64 },
  { name: 'Sub [3,1] - [2,3,4]', inputs: { a: f64([3, 1]), b: f64([2, 3, 4]) }, body: (g, x) => g.op('Sub', [x.a!, x.b!]), opts: F64 },
  { name: 'Mul [2,3,4] · [4]', inputs: { a: f64([2, 3, 4]), b: f64([4]) }, body: (g, x) => g.op('Mul', [x.a!, x.b!]), opts: F64 },
  {
    name: 'Div [2,3] / [2,1]',
    inputs: { a: f64([2, 3]), b: f64([2, 1], { min: 0.5 }) },
    body: (g, x) => g.op('Div', [x.a!, x.b!]),
    opts: F64,
  },
  {
    name: 'Mul by itself (fan-out sums gradients)',
    inputs: { a: f64([5]) },
    body: (g, x) => g.op('Mul', [x.a!, g.op('Mul', [x.a!, x.a!])]),
    opts: F64,
  },
  {
    name: 'Sum of three with broadcasting',
    inputs: { a: f64([2, 3]), b: f64([3]), c: f64([1, 1]) },
    body: (g, x) => g.op('Sum', [x.a!, x.b!, x.c!]),
    opts: F64,
  },
  {
    name: 'Where',
    inputs: { a: f64([2, 3]), b: f64([3]) },
    body: (g, x) => g.op('Where', [g.op('Greater', [x.a!, x.b!]), x.a!, x.b!]),
    opts: F64,
  },
  // unary
  { name: 'Relu', inputs: { a: f64([12], { away: 0.05 }) }, body: (g, x) => g.op('Relu', [x.a!]), opts: F64 },
  {
    name: 'LeakyRelu',
    inputs: { a: f64([12], { away: 0.05 }) },
    body: (g, x) => g.op('LeakyRelu', [x.a!], { alpha: float(0.2) }),
    opts: F64,
  },
  { name: 'Sigmoid', inputs: { a: f64([12]) }, body: (g, x) => g.op('Sigmoid', [x.a!]), opts: F64 },
  { name: 'Tanh', inputs: { a: f64([12]) }, body: (g, x) => g.op('Tanh', [x.a!]), opts: F64 },
  { name: 'Softplus', inputs: { a: f32([12]) }, body: (g, x) => g.op('Softplus', [x.a!]), opts: F32 },
  { name: 'Exp', inputs: { a: f64([12]) }, body: (g, x) => g.op('Exp', [x.a!]), opts: F64 },
  { name: 'Log', inputs: { a: f64([12], { min: 0.3 }) }, body: (g, x) => g.op('Log', [x.a!]), opts: F64 },
  { name: 'Sqrt', inputs: { a: f64([12], { min: 0.3 }) }, body: (g, x) => g.op('Sqrt', [x.a!]), opts: F64 },
  {
    name: 'Pow with a constant exponent',
    inputs: { a: f64([12], { min: 0.3 }) },
    body: (g, x) => g.op('Pow', [x.a!, g.scalar(2.5, 'float64')]),
    opts: F64,
  },
  {
    name: 'Neg, Sin, Cos, Abs',
    inputs: { a: f64([12], { away: 0.05 }) },
    body: (g, x) => g.op('Abs', [g.op('Neg', [g.op('Add', [g.op('Sin', [x.a!]), g.op('Cos', [x.a!])])])]),
    opts: F64,
  },
  { name: 'Reciprocal', inputs: { a: f64([12], { min: 0.4 }) }, body: (g, x) => g.op('Reciprocal', [x.a!]), opts: F64 },
  { name: 'Erf', inputs: { a: f32([12]) }, body: (g, x) => g.op('Erf', [x.a!]), opts: F32 },
  {
    name: 'Clip with min and max',
    inputs: { a: f64([12], { away: 0.05 }) },
    body: (g, x) => g.op('Clip', [x.a!, g.scalar(-0.7, 'float64'), g.scalar(0.9, 'float64')]),
    opts: F64,
  },
  // a float32 stage in the middle: float32 rounding bounds the accuracy, as for F32
  {
    name: 'Cast float64 → float32 → float64',
    inputs: { a: f64([6]) },
    body: (g, x) => g.op('Cast', [g.op('Mul', [g.op('Cast', [x.a!], { to: 1 }), g.scalar(3)])], { to: 11 }),
    opts: F32,
  },
  // a rule that needs scalar constants (Sigmoid's 1 − y) on the float32 stage of a float64 graph
  {
    name: 'Sigmoid on a float32 stage of a float64 graph',
    inputs: { a: f64([6]) },
    body: (g, x) => g.op('Cast', [g.op('Sigmoid', [g.op('Cast', [x.a!], { to: 1 })])], { to: 11 }),
    opts: F32,
  },
  { name: 'Softmax axis 1', inputs: { a: f64([2, 5, 3]) }, body: (g, x) => g.op('Softmax', [x.a!], { axis: 1 }), opts: F64 },
  { name: 'LogSoftmax axis -1', inputs: { a: f64([3, 4]) }, body: (g, x) => g.op('LogSoftmax', [x.a!], { axis: -1 }), opts: F64 },
  // linear algebra
  { name: 'MatMul [2,3,4]·[4,5]', inputs: { a: f64([2, 3, 4]), b: f64([4, 5]) }, body: (g, x) => g.op('MatMul', [x.a!, x.b!]), opts: F64 },
  {
    // ranks unknown to the graph: the operands' last two axes are swapped by an Einsum, not a Transpose
    name: 'MatMul [2,3,4]·[4,5] with undeclared shapes',
    inputs: { a: f64([2, 3, 4]), b: f64([4, 5]) },
    body: (g, x) => g.op('MatMul', [x.a!, x.b!]),
    opts: F64,
    declared: { a: null, b: null },
  },
  {
    name: 'MatMul broadcasting batch [2,1,3,4]·[5,4,2]',
    inputs: { a: f64([2, 1, 3, 4]), b: f64([5, 4, 2]) },
    body: (g, x) => g.op('MatMul', [x.a!, x.b!]),
    opts: F64,
  },
  {
    name: 'Gemm',
    inputs: { a: f64([3, 4]), b: f64([4, 2]), c: f64([2]) },
    body: (g, x) => g.op('Gemm', [x.a!, x.b!, x.c!], { alpha: float(0.5), beta: float(2) }),
    opts: F64,
  },
  {
    name: 'Gemm transA transB',
    inputs: { a: f64([4, 3]), b: f64([2, 4]), c: f64([3, 1]) },
    body: (g, x) => g.op('Gemm', [x.a!, x.b!, x.c!], { transA: 1, transB: 1 }),
    opts: F64,
  },
  {
    name: 'Einsum bct,bcs->bts (attention)',
    inputs: { a: f64([2, 3, 4]), b: f64([2, 3, 5]) },
    body: (g, x) => g.op('Einsum', [x.a!, x.b!], { equation: 'bct,bcs->bts' }),
    opts: F64,
  },
  {
    name: 'Einsum bts,bcs->bct',
    inputs: { a: f64([2, 4, 5]), b: f64([2, 3, 5]) },
    body: (g, x) => g.op('Einsum', [x.a!, x.b!], { equation: 'bts,bcs->bct' }),
    opts: F64,
  },
  {
    name: 'Einsum with ellipsis ...ij,jk',
    inputs: { a: f64([2, 3, 4]), b: f64([4, 2]) },
    body: (g, x) => g.op('Einsum', [x.a!, x.b!], { equation: '...ij,jk->...ik' }),
    opts: F64,
  },
  // reductions and shapes
  {
    name: 'ReduceSum axes [1] keepdims 0',
    inputs: { a: f64([2, 3, 4]) },
    body: (g, x) => g.op('ReduceSum', [x.a!, g.int64s([1])], { keepdims: 0 }),
    opts: F64,
  },
  {
    name: 'ReduceMean axes [-1,0] keepdims 1 (opset 17 attribute)',
    inputs: { a: f64([2, 3, 4]) },
    body: (g, x) => g.op('ReduceMean', [x.a!], { axes: [-1, 0], keepdims: 1 }),
    opts: F64,
  },
  {
    name: 'ReduceMean over everything',
    inputs: { a: f64([2, 3]) },
    body: (g, x) => g.op('ReduceMean', [x.a!], { keepdims: 0 }),
    opts: F64,
  },
  {
    name: 'Reshape, Transpose, Flatten',
    inputs: { a: f64([2, 3, 4]) },
    body: (g, x) => g.op('Flatten', [g.op('Transpose', [g.op('Reshape', [x.a!, g.int64s([4, 6])])], { perm: [1, 0] })], { axis: 1 }),
    opts: F64,
  },
  {
    name: 'Squeeze, Unsqueeze, Expand',
    inputs: { a: f64([3, 1]) },
    body: (g, x) => g.op('Expand', [g.op('Unsqueeze', [g.op('Squeeze', [x.a!, g.int64s([1])]), g.int64s([0])]), g.int64s([2, 3])]),
    opts: F64,
  },
  {
    name: 'Concat of three along axis 1',
    inputs: { a: f64([2, 1]), b: f64([2, 3]), c: f64([2, 2]) },
    body: (g, x) => g.op('Concat', [x.a!, x.b!, x.c!], { axis: 1 }),
    opts: F64,
  },
  {
    name: 'Split into three, one unused',
    inputs: { a: f64([2, 6]) },
    body: (g, x) => {
      const [p, , r] = g.opMulti('Split', [x.a!, g.int64s([1, 2, 3])], { axis: 1 }, 3);
      return g.op('Concat', [r!, p!], { axis: 1 });
    },
    opts: F64,
  },
  {
    name: 'Slice with negative starts and an axis',
    inputs: { a: f64([3, 5]) },
    body: (g, x) => g.op('Slice', [x.a!, g.int64s([-4]), g.int64s([100]), g.int64s([1])]),
    opts: F64,
  },
  {
    name: 'Slice all axes, no axes input',
    inputs: { a: f64([4, 5]) },
    body: (g, x) => g.op('Slice', [x.a!, g.int64s([1, 0]), g.int64s([3, -1])]),
    opts: F64,
  },
  {
    // a flipped kernel (the input gradient of a Conv, differentiated again for R1)
    name: 'Slice reversing two axes (steps −1, ends past the front)',
    inputs: { a: f64([3, 4, 5]) },
    body: (g, x) =>
      g.op('Mul', [
        g.op('Slice', [x.a!, g.int64s([-1, -1]), g.int64s([-(2 ** 62), -(2 ** 62)]), g.int64s([1, 2]), g.int64s([-1, -1])]),
        x.a!,
      ]),
    opts: F64,
  },
  {
    name: 'Pad with pads computed in the graph (as a Slice gradient makes them)',
    inputs: { a: f64([2, 3, 4]) },
    body: (g, x) => g.op('Pad', [x.a!, g.op('Max', [g.int64s([0, 1, 2, 1, 0, 3]), g.int64s([0, 0, 0, 0, 0, 0])])]),
    opts: F64,
  },
  {
    name: 'Gather rows (embedding) with repeats',
    inputs: { a: f64([5, 3]) },
    body: (g, x) => g.op('Gather', [x.a!, g.constant(tensorData('int64', [2, 2], [4, 1, 4, 0]))], { axis: 0 }),
    opts: F64,
  },
  {
    // float32: ORT fuses the forward into QuickGelu, which has no float64 kernel
    name: 'SiLU as exporters write it, Mul(x, Sigmoid(x)), differentiated as one unit',
    inputs: { a: f32([2, 3, 4]) },
    body: (g, x) => g.op('Mul', [x.a!, g.op('Sigmoid', [x.a!])]),
    opts: F32,
  },
  {
    name: 'Mul(Sigmoid(x), x) with the Sigmoid also used elsewhere (no fusion: two paths sum)',
    inputs: { a: f64([2, 5]) },
    body: (g, x) => {
      const s = g.op('Sigmoid', [x.a!]);
      return g.op('Add', [g.op('Mul', [s, x.a!]), g.op('Mul', [s, s])]);
    },
    opts: F64,
  },
  {
    name: "Gather along axis 1 with a scalar index (PyTorch's h[:, 0])",
    inputs: { a: f64([3, 4, 2]) },
    body: (g, x) => g.op('Gather', [x.a!, g.constant(tensorData('int64', [], [2]))], { axis: 1 }),
    opts: F64,
  },
  {
    name: 'Gather along axis -1 with repeated 2-D indices',
    inputs: { a: f64([2, 3, 5]) },
    body: (g, x) => g.op('Gather', [x.a!, g.constant(tensorData('int64', [2, 2], [4, 1, 4, 0]))], { axis: -1 }),
    opts: F64,
  },
  {
    name: 'Pad (constant mode, asymmetric)',
    inputs: { a: f64([2, 3, 4]) },
    body: (g, x) => g.op('Pad', [x.a!, g.int64s([0, 1, 2, 1, 0, 3])]),
    opts: F64,
  },
  // convolutions, pooling, resizing (float32 kernels)
  {
    name: 'Conv 3×3 pad 1',
    inputs: { x: f32([2, 3, 6, 6]), w: f32([4, 3, 3, 3]), b: f32([4]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!, x.b!], { pads: [1, 1, 1, 1] }),
    opts: F32,
  },
  {
    // fewer output than input channels, size kept: the weight gradient shifts gy instead of x
    name: 'Conv narrowing, uneven "same" pads (2×3 kernel)',
    inputs: { x: f32([2, 5, 5, 6]), w: f32([2, 5, 2, 3]), b: f32([2]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!, x.b!], { pads: [0, 1, 1, 1] }),
    opts: F32,
  },
  {
    // fewer output than input channels, strided: windows of x, the narrower gy packed by the GEMM
    name: 'Conv narrowing, stride 2',
    inputs: { x: f32([2, 5, 7, 7]), w: f32([3, 5, 3, 3]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!], { strides: [2, 2], pads: [1, 1, 1, 1] }),
    opts: F32,
  },
  {
    name: 'Conv stride 2, odd size (uneven cover)',
    inputs: { x: f32([1, 2, 7, 7]), w: f32([3, 2, 3, 3]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!], { strides: [2, 2], pads: [1, 1, 0, 0] }),
    opts: F32,
  },
  {
    // the transposed convolution fitted to x: stride 3, kernels wider than the stride on one axis and
    // narrower on the other, uneven pads, sizes that are not multiples of the stride
    name: 'Conv stride 3, 5×2 kernel, uneven pads',
    inputs: { x: f32([2, 2, 11, 10]), w: f32([3, 2, 5, 2]), b: f32([3]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!, x.b!], { strides: [3, 3], pads: [2, 1, 0, 2] }),
    opts: F32,
  },
  {
    name: 'Conv dilation 2',
    inputs: { x: f32([1, 2, 7, 7]), w: f32([2, 2, 3, 3]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!], { dilations: [2, 2], pads: [2, 2, 2, 2] }),
    opts: F32,
  },
  {
    name: 'Conv groups 2',
    inputs: { x: f32([2, 4, 5, 5]), w: f32([6, 2, 3, 3]), b: f32([6]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!, x.b!], { group: 2, pads: [1, 1, 1, 1] }),
    opts: F32,
  },
  {
    name: 'Conv depthwise stride 2',
    inputs: { x: f32([1, 3, 6, 6]), w: f32([3, 1, 3, 3]) },
    body: (g, x) => g.op('Conv', [x.x!, x.w!], { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] }),
    opts: F32,
  },
  { name: 'Conv 1×1', inputs: { x: f32([2, 3, 4, 4]), w: f32([5, 3, 1, 1]) }, body: (g, x) => g.op('Conv', [x.x!, x.w!]), opts: F32 },
  {
    name: 'ConvTranspose stride 2, output_padding 1',
    inputs: { x: f32([1, 3, 4, 4]), w: f32([3, 2, 3, 3]), b: f32([2]) },
    body: (g, x) => g.op('ConvTranspose', [x.x!, x.w!, x.b!], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }),
    opts: F32,
  },
  {
    name: 'ConvTranspose groups 2',
    inputs: { x: f32([1, 4, 3, 3]), w: f32([4, 1, 2, 2]) },
    body: (g, x) => g.op('ConvTranspose', [x.x!, x.w!], { strides: [2, 2], group: 2 }),
    opts: F32,
  },
  {
    name: 'AveragePool 2×2 stride 2',
    inputs: { x: f32([2, 3, 6, 6]) },
    body: (g, x) => g.op('AveragePool', [x.x!], { kernel_shape: [2, 2], strides: [2, 2] }),
    opts: F32,
  },
  {
    name: 'AveragePool 3×3 pad 1 excluding pads',
    inputs: { x: f32([1, 2, 5, 5]) },
    body: (g, x) => g.op('AveragePool', [x.x!], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
    opts: F32,
  },
  { name: 'GlobalAveragePool', inputs: { x: f32([2, 3, 4, 4]) }, body: (g, x) => g.op('GlobalAveragePool', [x.x!]), opts: F32 },
  {
    name: 'Resize nearest ×2 (scales)',
    inputs: { x: f32([1, 2, 3, 3]) },
    body: (g, x) => g.op('Resize', [x.x!, '', g.constant(tensorData('float32', [4], [1, 1, 2, 2]))], { mode: 'nearest' }),
    opts: F32,
  },
  // normalizations (decomposed)
  {
    name: 'InstanceNormalization',
    inputs: { x: f32([2, 3, 4, 4]), s: f32([3]), b: f32([3]) },
    body: (g, x) => g.op('InstanceNormalization', [x.x!, x.s!, x.b!], { epsilon: float(1e-5) }),
    opts: F32,
  },
  {
    name: 'InstanceNormalization of data far from zero (its rule takes σ² from x̂·x, without cancellation)',
    inputs: { x: f32([2, 3, 4, 4], { min: 20 }), s: f32([3]), b: f32([3]) },
    body: (g, x) => g.op('InstanceNormalization', [x.x!, x.s!, x.b!], { epsilon: float(1e-5) }),
    opts: F32,
  },
  {
    name: 'LayerNormalization last axis',
    inputs: { x: f32([2, 3, 6]), s: f32([6]), b: f32([6]) },
    body: (g, x) => g.op('LayerNormalization', [x.x!, x.s!, x.b!], { axis: -1 }),
    opts: F32,
  },
  {
    name: 'BatchNormalization (inference)',
    inputs: { x: f32([2, 3, 4, 4]), s: f32([3]), b: f32([3]), m: f32([3]), v: f32([3], { min: 0.5 }) },
    wrt: ['x', 's', 'b'],
    body: (g, x) => g.op('BatchNormalization', [x.x!, x.s!, x.b!, x.m!, x.v!]),
    opts: F32,
  },
  {
    name: 'GroupNormalization (opset 21, per-channel affine)',
    inputs: { x: f32([2, 4, 3, 3]), s: f32([4]), b: f32([4]) },
    body: (g, x) => g.op('GroupNormalization', [x.x!, x.s!, x.b!], { num_groups: 2 }),
    opts: F32,
    opset: 21,
  },
  torchGroupNorm('GroupNorm as torch.onnx exports it (Reshape → InstanceNormalization → Reshape → Mul → Add)', 1e-5),
  // ε as large as the variance: where the unit's recovery of 1/√(σ² + ε) from x̂ shows an error in ε
  torchGroupNorm('the same GroupNorm with ε = 0.5', 0.5),
];
// a stride-1 input gradient is a transposed convolution below 8 input channels (the cases above), a
// convolution with the flipped kernel from 8 on: these cases again, on that path
for (const name of ['Conv narrowing, uneven "same" pads (2×3 kernel)', 'Conv dilation 2', 'Conv groups 2']) {
  const c = cases.find((k) => k.name === name)!;
  const [x, w] = [c.inputs['x']!.shape, c.inputs['w']!.shape];
  const group = x[1]! / w[1]!;
  const widened = { x: f32([x[0]!, 8, ...x.slice(2)]), w: f32([w[0]!, 8 / group, ...w.slice(2)]) };
  cases.push({ ...c, name: `${name}, 8 input channels (flipped-kernel path)`, inputs: { ...c.inputs, ...widened } });
}
// the same GroupNorm with its spatial size known only at run time (the group count comes from Size)
cases.push({
  ...torchGroupNorm('GroupNorm as torch.onnx exports it, symbolic spatial dims', 1e-5),
  inputs: { x: f32([2, 4, 3, 5]), s: f32([4, 1, 1]), b: f32([4, 1, 1]) },
  declared: { x: ['N', 4, 'H', 'W'] },
});

describe('gradient graphs: every op against central finite differences', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const outDtype = Object.values(c.inputs)[0]!.dtype;
      const { checked } = await checkGradient(model(c.inputs, c.body, outDtype, c.declared), c.inputs, c.wrt ?? Object.keys(c.inputs), {
        ...c.opts,
        opset: c.opset,
      });
      expect(checked).toBeGreaterThan(0);
    });
  }
});

describe('gradient graphs: shapes the graph does not state', () => {
  it('Conv weight gradient with the channel count unknown (windows by Slice, not the one-hot depthwise Conv)', async () => {
    const x = f32([2, 3, 5, 5]);
    const w = f32([4, 3, 3, 3]);
    const build = (g: GraphBuilder): OnnxModel => {
      const xi = g.input('x', 'float32', ['N', 'C', 5, 5]);
      const wi = g.input('w', 'float32', [4, 'C', 3, 3]);
      g.identity(g.op('Conv', [xi, wi], { pads: [1, 1, 1, 1], strides: [2, 2] }), 'y');
      g.output('y', 'float32', null);
      return g.build();
    };
    const { checked, gradModel } = await checkGradient(build, { x, w }, ['x', 'w'], F32);
    expect(checked).toBeGreaterThan(10);
    expect(gradModel.graph.nodes.some((n) => n.opType === 'Slice')).toBe(true);
  });
});

describe('gradient graphs: structure and errors', () => {
  it('emits only default-domain ops and survives a serialize/parse round trip', async () => {
    const g = new (await import('../../src/main/engine/onnx/builder.js')).GraphBuilder('m');
    const x = g.input('x', 'float32', ['N', 3]);
    g.identity(g.op('Tanh', [g.op('MatMul', [x, g.constant(tensorData('float32', [3, 2], [1, 2, 3, 4, 5, 6]))])]), 'y');
    g.output('y', 'float32', ['N', 2]);
    const gm = gradient(g.build(), { of: 'y', wrt: ['x'] });
    expect(gm.graph.nodes.every((n) => n.domain === '')).toBe(true);
    expect(gm.opsetVersion).toBeGreaterThanOrEqual(17);
    const back = parseModel(serializeModel(gm));
    expect(back.graph.outputs.map((o) => o.name)).toEqual(['y', 'grad_x']);
  });

  it('a float32 graph gets its scalars as float32 constants: no CastLike at run time', async () => {
    const g = new (await import('../../src/main/engine/onnx/builder.js')).GraphBuilder('m');
    const x = g.input('x', 'float32', ['N', 3]);
    g.identity(g.op('Mul', [g.op('Sqrt', [g.op('Sigmoid', [x])]), g.op('Tanh', [x])]), 'y');
    g.output('y', 'float32', null);
    const gm = gradient(g.build(), { of: 'y', wrt: ['x'] });
    expect(gm.graph.nodes.filter((n) => n.opType === 'CastLike')).toEqual([]);
    expect([...gm.graph.initializers.values()].filter((t) => t.dims.length === 0).every((t) => t.dtype === 'float32')).toBe(true);
  });

  it('reuses forward activations: Tanh is evaluated once', async () => {
    const g = new (await import('../../src/main/engine/onnx/builder.js')).GraphBuilder('m');
    const x = g.input('x', 'float32', ['N', 3]);
    g.identity(g.op('Tanh', [x]), 'y');
    g.output('y', 'float32', null);
    const gm = gradient(g.build(), { of: 'y', wrt: ['x'] });
    expect(gm.graph.nodes.filter((n) => n.opType === 'Tanh')).toHaveLength(1);
  });

  it('an unsupported op on the path is an error naming the op and the node', async () => {
    const g = new (await import('../../src/main/engine/onnx/builder.js')).GraphBuilder('m');
    const x = g.input('x', 'float32', ['N', 1, 4, 4]);
    g.identity(g.op('MaxPool', [x], { kernel_shape: [2, 2] }), 'y');
    g.output('y', 'float32', null);
    expect(() => gradient(g.build(), { of: 'y', wrt: ['x'] })).toThrow(
      /cannot differentiate MaxPool node "MaxPool_\d+": the op MaxPool has no gradient rule/,
    );
  });

  it('ops off the path (a time embedding from t alone) need no rule', async () => {
    const g = new (await import('../../src/main/engine/onnx/builder.js')).GraphBuilder('m');
    const x = g.input('x', 'float32', ['N', 2]);
    const t = g.input('t', 'float32', ['N', 1]);
    const emb = g.op('TopK', [g.op('Sin', [t]), g.int64s([1])], {});
    g.identity(g.op('Mul', [x, emb]), 'y');
    g.output('y', 'float32', null);
    expect(() => gradient(g.build(), { of: 'y', wrt: ['x'] })).not.toThrow();
  });

  it('refuses to differentiate with respect to a value that is not an input or initializer', async () => {
    const g = new (await import('../../src/main/engine/onnx/builder.js')).GraphBuilder('m');
    const x = g.input('x', 'float32', [2]);
    g.identity(x, 'y');
    g.output('y', 'float32', null);
    expect(() => gradient(g.build(), { of: 'y', wrt: ['z'] })).toThrow(/neither an input nor an initializer/);
  });
});
