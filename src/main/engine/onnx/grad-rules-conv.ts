/**
 * Gradient rules of convolutions, pooling and resizing (vector–Jacobian products in standard ONNX ops, as in
 * grad-rules.ts, which lists them with the rest).
 */
import type { Emitter } from './emitter.js';
import { intAttr as int, intsAttr as ints, strAttr as str, type Dim, type OnnxNode } from './ir.js';
import { first, unsupported, type GradRule } from './grad-rule.js';

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
      return e.op('ConvTranspose', [g, w], { kernel_shape: a.kernel, pads: a.pads, dilations: a.dilations, group: a.group });
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
    return e.op('Conv', [g, wt], { kernel_shape: a.kernel, pads: flippedPads, dilations: a.dilations, group: a.group });
  }
  const common = { kernel_shape: a.kernel, strides: a.strides, pads: beginPadsOnly(a.pads), dilations: a.dilations, group: a.group };
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

/** This file's rules by op type. */
export const CONV_RULES: Record<string, GradRule> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
  Resize: resize,
};
