/**
 * The ε-prediction U-Net of `tools/train-score-model.py`, built as an ONNX graph with the same
 * parameter names and shapes as the PyTorch module's state_dict (so weights move both ways):
 * sinusoidal time embedding + MLP, residual blocks with GroupNorm and SiLU, self-attention at
 * low resolution, skip concatenation, strided-conv down / nearest up sampling, and an optional
 * space-to-depth patch at the input (Hoogeboom et al. 2023, "simple diffusion").
 *
 * Inputs `x` [N, 3, H, W] in [-1, 1] and `t` [N] int64 (the DDPM step, dg-math §1–2); output
 * `out` [N, 3, H, W], the predicted ε. Weights are initializers; `params` lists them in the
 * PyTorch module's order.
 */
import { GraphBuilder } from '../onnx/builder.js';
import { float, tensorData, type OnnxModel } from '../onnx/ir.js';
import { Rng } from '../rng.js';

export interface UNetArch {
  /** base width */
  channels: number;
  /** width multiplier per resolution level */
  mult: number[];
  /** inner-grid resolutions (after the patch) with self-attention */
  attn: number[];
  groups: number;
  /** image side (square images) */
  resolution: number;
  /** space-to-depth factor at the input (1: none) */
  patch: number;
  imageChannels: number;
}

export const DEFAULT_UNET_ARCH: UNetArch = {
  channels: 32,
  mult: [1, 2, 2, 2],
  attn: [16, 8],
  groups: 8,
  resolution: 64,
  patch: 1,
  imageChannels: 3,
};

export interface BuiltUNet {
  model: OnnxModel;
  /** trainable parameters, state_dict names, in module order */
  params: string[];
  arch: UNetArch;
}

/** A readable problem with an architecture, or null when it can be built. */
export function unetArchProblem(a: UNetArch): string | null {
  if (!Number.isInteger(a.channels) || a.channels < 1) return `channels must be a positive integer (got ${a.channels})`;
  if (a.channels % a.groups !== 0) return `channels (${a.channels}) must be divisible by the GroupNorm groups (${a.groups})`;
  if (a.mult.some((m) => (a.channels * m) % a.groups !== 0))
    return `every level's width (channels × mult) must be divisible by groups (${a.groups})`;
  if (![1, 2, 4].includes(a.patch)) return `patch must be 1, 2 or 4 (got ${a.patch})`;
  const inner = a.resolution / a.patch;
  const levels = a.mult.length - 1;
  if (!Number.isInteger(inner / 2 ** levels))
    return `a ${a.resolution}×${a.resolution} image with patch ${a.patch} cannot be halved ${levels} times (mult has ${a.mult.length} levels)`;
  return null;
}

class UNetBuilder {
  readonly g: GraphBuilder;
  readonly params: string[] = [];
  private readonly rng: Rng;

  constructor(seed: number) {
    this.g = new GraphBuilder('unet');
    this.rng = new Rng(seed);
  }

  /** PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias (or zeros). */
  private param(name: string, dims: number[], bound: number): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (bound > 0) for (let i = 0; i < n; i++) data[i] = (2 * this.rng.uniform() - 1) * bound;
    this.g.constant(tensorData('float32', dims, data), name);
    this.params.push(name);
    return name;
  }

  private filled(name: string, dims: number[], value: number): string {
    this.g.constant(tensorData('float32', dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value)), name);
    this.params.push(name);
    return name;
  }

  conv(name: string, x: string, cin: number, cout: number, k: number, opts: { stride?: number; zero?: boolean } = {}): string {
    const bound = opts.zero ? 0 : 1 / Math.sqrt(cin * k * k);
    const w = this.param(`${name}.weight`, [cout, cin, k, k], bound);
    const b = this.param(`${name}.bias`, [cout], bound);
    const p = k >> 1;
    const s = opts.stride ?? 1;
    return this.g.op('Conv', [x, w, b], { kernel_shape: [k, k], pads: [p, p, p, p], strides: [s, s] });
  }

  linear(name: string, x: string, din: number, dout: number): string {
    const bound = 1 / Math.sqrt(din);
    const w = this.param(`${name}.weight`, [dout, din], bound);
    const b = this.param(`${name}.bias`, [dout], bound);
    return this.g.op('Gemm', [x, w, b], { transB: 1 });
  }

  silu(x: string): string {
    return this.g.op('Mul', [x, this.g.op('Sigmoid', [x])]);
  }

  /** GroupNorm as torch.onnx writes it (Reshape → InstanceNormalization → Reshape, then the affine). */
  groupNorm(name: string, x: string, channels: number, groups: number): string {
    const gamma = this.filled(`${name}.weight`, [channels], 1);
    const beta = this.filled(`${name}.bias`, [channels], 0);
    const grouped = this.g.op('Reshape', [x, this.g.int64s([0, groups, -1])]);
    const ones = this.g.constant(tensorData('float32', [groups], new Float32Array(groups).fill(1)));
    const zeros = this.g.constant(tensorData('float32', [groups], new Float32Array(groups)));
    const normed = this.g.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: float(1e-5) });
    const back = this.g.op('Reshape', [normed, this.g.op('Shape', [x])]);
    const c11 = this.g.int64s([channels, 1, 1]);
    return this.g.op('Add', [this.g.op('Mul', [back, this.g.op('Reshape', [gamma, c11])]), this.g.op('Reshape', [beta, c11])]);
  }

  /** ADM's timestep_embedding of the integer step: [cos(t·f), sin(t·f)], f_i = 10000^(-i/half). */
  timestepEmbedding(t: string, dim: number): string {
    const half = dim >> 1;
    const freqs = Float32Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half));
    const tf = this.g.op('Cast', [t], { to: 1 });
    const args = this.g.op('Mul', [
      this.g.op('Unsqueeze', [tf, this.g.int64s([1])]),
      this.g.constant(tensorData('float32', [1, half], freqs)),
    ]);
    return this.g.op('Concat', [this.g.op('Cos', [args]), this.g.op('Sin', [args])], { axis: 1 });
  }

  resBlock(name: string, x: string, cin: number, cout: number, temb: string, tdim: number, groups: number): string {
    let h = this.conv(`${name}.c1`, this.silu(this.groupNorm(`${name}.n1`, x, cin, groups)), cin, cout, 3);
    const tb = this.linear(`${name}.t`, this.silu(temb), tdim, cout);
    h = this.g.op('Add', [h, this.g.op('Unsqueeze', [tb, this.g.int64s([2, 3])])]);
    h = this.conv(`${name}.c2`, this.silu(this.groupNorm(`${name}.n2`, h, cout, groups)), cout, cout, 3, { zero: true });
    const skip = cin === cout ? x : this.conv(`${name}.skip`, x, cin, cout, 1);
    return this.g.op('Add', [skip, h]);
  }

  /** Single-head self-attention over the H·W positions, as MatMuls (ORT runs them faster than Einsum). */
  attention(name: string, x: string, c: number, groups: number): string {
    const qkv = this.conv(`${name}.qkv`, this.groupNorm(`${name}.norm`, x, c, groups), c, 3 * c, 1);
    const flat = this.g.op('Reshape', [qkv, this.g.int64s([0, 3 * c, -1])]); // [N, 3C, T]
    const [q, k, v] = this.g.opMulti('Split', [flat, this.g.int64s([c, c, c])], { axis: 1 }, 3) as [string, string, string];
    const scale = this.g.scalar(1 / Math.sqrt(Math.sqrt(c)));
    const qT = this.g.op('Transpose', [this.g.op('Mul', [q, scale])], { perm: [0, 2, 1] }); // [N, T, C]
    const w = this.g.op('MatMul', [qT, this.g.op('Mul', [k, scale])]); // [N, T, S]
    const a = this.g.op('Softmax', [w], { axis: -1 });
    const o = this.g.op('MatMul', [v, this.g.op('Transpose', [a], { perm: [0, 2, 1] })]); // [N, C, T]
    const out = this.conv(`${name}.proj`, this.g.op('Reshape', [o, this.g.op('Shape', [x])]), c, c, 1, { zero: true });
    return this.g.op('Add', [x, out]);
  }

  /** pixel_unshuffle: [N, C, H, W] → [N, C·p², H/p, W/p], channel c·p² + i·p + j. */
  spaceToDepth(x: string, c: number, res: number, p: number): string {
    const r = res / p;
    const six = this.g.op('Reshape', [x, this.g.int64s([0, c, r, p, r, p])]); // 0: keep the (symbolic) batch size
    const moved = this.g.op('Transpose', [six], { perm: [0, 1, 3, 5, 2, 4] });
    return this.g.op('Reshape', [moved, this.g.int64s([0, c * p * p, r, r])]);
  }

  /** pixel_shuffle, the inverse of spaceToDepth. */
  depthToSpace(x: string, c: number, res: number, p: number): string {
    const r = res / p;
    const six = this.g.op('Reshape', [x, this.g.int64s([0, c, p, p, r, r])]);
    const moved = this.g.op('Transpose', [six], { perm: [0, 1, 4, 2, 5, 3] });
    return this.g.op('Reshape', [moved, this.g.int64s([0, c, res, res])]);
  }

  upsample(x: string): string {
    const scales = this.g.constant(tensorData('float32', [4], Float32Array.from([1, 1, 2, 2])));
    return this.g.op('Resize', [x, '', scales], { mode: 'nearest', nearest_mode: 'floor', coordinate_transformation_mode: 'asymmetric' });
  }
}

/** The U-Net graph with seeded initial weights (same names and shapes as the PyTorch module). */
export function buildUNet(arch: UNetArch = DEFAULT_UNET_ARCH, seed = 0): BuiltUNet {
  const problem = unetArchProblem(arch);
  if (problem) throw new Error(`U-Net: ${problem}`);
  const b = new UNetBuilder(seed);
  const { channels: ch, mult, groups, patch: p, imageChannels: ic } = arch;
  const tdim = ch * 4;
  const x = b.g.input('x', 'float32', ['N', ic, arch.resolution, arch.resolution]);
  const t = b.g.input('t', 'int64', ['N']);
  let temb = b.linear('temb.0', b.timestepEmbedding(t, ch), ch, tdim);
  temb = b.linear('temb.2', b.silu(temb), tdim, tdim);
  const inner = arch.resolution / p;
  let h = b.conv('inp', p > 1 ? b.spaceToDepth(x, ic, arch.resolution, p) : x, ic * p * p, ch, 3);
  const skips: string[] = [h];
  const chans: number[] = [ch];
  let cur = ch;
  let r = inner;
  let k = 0;
  mult.forEach((m, i) => {
    for (let j = 0; j < 2; j++) {
      h = b.resBlock(`down.${k}.0`, h, cur, ch * m, temb, tdim, groups);
      cur = ch * m;
      if (arch.attn.includes(r)) h = b.attention(`down.${k}.1`, h, cur, groups);
      skips.push(h);
      chans.push(cur);
      k++;
    }
    if (i < mult.length - 1) {
      h = b.conv(`down.${k}.0`, h, cur, cur, 3, { stride: 2 });
      skips.push(h);
      chans.push(cur);
      k++;
      r /= 2;
    }
  });
  h = b.resBlock('mid.0', h, cur, cur, temb, tdim, groups);
  h = b.attention('mid.1', h, cur, groups);
  h = b.resBlock('mid.2', h, cur, cur, temb, tdim, groups);
  k = 0;
  for (let i = mult.length - 1; i >= 0; i--) {
    for (let j = 0; j < 3; j++) {
      const skipCh = chans.pop()!;
      h = b.g.op('Concat', [h, skips.pop()!], { axis: 1 });
      h = b.resBlock(`up.${k}.0`, h, cur + skipCh, ch * mult[i]!, temb, tdim, groups);
      cur = ch * mult[i]!;
      if (arch.attn.includes(r)) h = b.attention(`up.${k}.1`, h, cur, groups);
      k++;
    }
    if (i > 0) {
      h = b.conv(`up.${k}.1`, b.upsample(h), cur, cur, 3);
      k++;
      r *= 2;
    }
  }
  h = b.conv('out.2', b.silu(b.groupNorm('out.0', h, cur, groups)), cur, ic * p * p, 3, { zero: true });
  if (p > 1) h = b.depthToSpace(h, ic, arch.resolution, p);
  b.g.identity(h, 'out');
  b.g.output('out', 'float32', ['N', ic, arch.resolution, arch.resolution]);
  const model = b.g.build({ 'dg-studio.unet': JSON.stringify(arch) });
  return { model, params: b.params, arch };
}

/** Parameters of an architecture (built once and counted). */
export function unetParameterCount(built: BuiltUNet): number {
  return built.params.reduce((n, p) => n + built.model.graph.initializers.get(p)!.data.length, 0);
}

/**
 * A copy of the U-Net with its weights replaced from `weights` (state_dict names → values, e.g. a
 * checkpoint's `model.` or `ema.` tensors with the prefix removed). Every parameter must be given.
 */
export function withUNetWeights(built: BuiltUNet, weights: (name: string) => Float32Array | undefined, source: string): OnnxModel {
  const m = built.model;
  const initializers = new Map(m.graph.initializers);
  for (const p of built.params) {
    const t = initializers.get(p)!;
    const w = weights(p);
    if (!w) throw new Error(`${source}: has no weights for "${p}" (is it a checkpoint of this architecture?)`);
    if (w.length !== t.data.length)
      throw new Error(`${source}: "${p}" has ${w.length} values; this architecture needs ${t.data.length} ([${t.dims}])`);
    initializers.set(p, { ...t, data: Float32Array.from(w) });
  }
  return { ...m, graph: { ...m.graph, initializers } };
}
