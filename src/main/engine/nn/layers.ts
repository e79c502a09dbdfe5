/**
 * Layers for the project's own networks, emitted as the ONNX ops torch.onnx would write
 * (GroupNorm as Reshape → InstanceNormalization → Reshape → Mul → Add, SiLU as x·σ(x),
 * attention as einsum), so they exercise the same differentiator paths as user models.
 * Parameters are initializers with seeded initial values; `params` lists the trainable ones.
 */
import { GraphBuilder } from '../onnx/builder.js';
import { float, tensorData } from '../onnx/ir.js';
import { Rng } from '../rng.js';

export class NetBuilder {
  readonly g: GraphBuilder;
  readonly params: string[] = [];
  private readonly rng: Rng;
  private layer = 0;

  constructor(name: string, seed = 0) {
    this.g = new GraphBuilder(name);
    this.rng = new Rng(seed);
  }

  private scope(kind: string): string {
    return `${kind}${this.layer++}`;
  }

  /** A trainable parameter: N(0, std²) (He init when std is omitted for weights), or a constant fill. */
  param(name: string, dims: number[], init: { std: number } | { fill: number }): string {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if ('std' in init) for (let i = 0; i < n; i++) data[i] = this.rng.normal() * init.std;
    else data.fill(init.fill);
    this.g.constant(tensorData('float32', dims, data), name);
    this.params.push(name);
    return name;
  }

  conv2d(x: string, cin: number, cout: number, opts: { k?: number; stride?: number; zeroInit?: boolean } = {}): string {
    const k = opts.k ?? 3;
    const s = this.scope('conv');
    const w = this.param(`${s}.weight`, [cout, cin, k, k], opts.zeroInit ? { fill: 0 } : { std: Math.sqrt(2 / (cin * k * k)) });
    const b = this.param(`${s}.bias`, [cout], { fill: 0 });
    const p = k >> 1;
    return this.g.op('Conv', [x, w, b], { kernel_shape: [k, k], pads: [p, p, p, p], strides: [opts.stride ?? 1, opts.stride ?? 1] });
  }

  /** y = x·Wᵀ + b for x [N, din] (torch.nn.Linear as Gemm). */
  linear(x: string, din: number, dout: number, opts: { zeroInit?: boolean } = {}): string {
    const s = this.scope('linear');
    const w = this.param(`${s}.weight`, [dout, din], opts.zeroInit ? { fill: 0 } : { std: Math.sqrt(1 / din) });
    const b = this.param(`${s}.bias`, [dout], { fill: 0 });
    return this.g.op('Gemm', [x, w, b], { transB: 1 });
  }

  silu(x: string): string {
    return this.g.op('Mul', [x, this.g.op('Sigmoid', [x])]);
  }

  /** GroupNorm the way torch.onnx exports it. */
  groupNorm(x: string, channels: number, groups: number): string {
    const s = this.scope('norm');
    const gamma = this.param(`${s}.weight`, [channels, 1, 1], { fill: 1 });
    const beta = this.param(`${s}.bias`, [channels, 1, 1], { fill: 0 });
    const grouped = this.g.op('Reshape', [x, this.g.int64s([0, groups, -1])]);
    const ones = this.g.constant(tensorData('float32', [groups], new Float32Array(groups).fill(1)));
    const zeros = this.g.constant(tensorData('float32', [groups], new Float32Array(groups)));
    const normed = this.g.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: float(1e-5) });
    const back = this.g.op('Reshape', [normed, this.g.op('Shape', [x])]);
    return this.g.op('Add', [this.g.op('Mul', [back, gamma]), beta]);
  }

  /** Sinusoidal embedding of t [N] → [N, dim] (ADM's timestep_embedding, max period 10000). */
  timeEmbedding(t: string, dim: number, scale = 1000): string {
    const half = dim >> 1;
    const freqs = Float32Array.from({ length: half }, (_, i) => scale * Math.exp((-Math.log(10000) * i) / half));
    const args = this.g.op('Mul', [
      this.g.op('Unsqueeze', [t, this.g.int64s([1])]),
      this.g.constant(tensorData('float32', [1, half], freqs)),
    ]);
    return this.g.op('Concat', [this.g.op('Cos', [args]), this.g.op('Sin', [args])], { axis: 1 });
  }

  /** ADM-style residual block with a time-embedding bias. */
  resBlock(x: string, cin: number, cout: number, temb: string, tdim: number, groups: number): string {
    let h = this.conv2d(this.silu(this.groupNorm(x, cin, groups)), cin, cout);
    const tb = this.linear(this.silu(temb), tdim, cout);
    h = this.g.op('Add', [h, this.g.op('Unsqueeze', [tb, this.g.int64s([2, 3])])]);
    h = this.conv2d(this.silu(this.groupNorm(h, cout, groups)), cout, cout, { zeroInit: false });
    const skip = cin === cout ? x : this.conv2d(x, cin, cout, { k: 1 });
    return this.g.op('Add', [skip, h]);
  }

  /** Single-head self-attention over H·W positions, written with einsum as in ADM. */
  attention(x: string, channels: number, groups: number): string {
    const qkv = this.conv2d(this.groupNorm(x, channels, groups), channels, 3 * channels, { k: 1 });
    const flat = this.g.op('Reshape', [qkv, this.g.int64s([0, 3 * channels, -1])]); // [N, 3C, T]
    const [q, k, v] = this.g.opMulti('Split', [flat, this.g.int64s([channels, channels, channels])], { axis: 1 }, 3) as [
      string,
      string,
      string,
    ];
    const scale = this.g.scalar(1 / Math.sqrt(Math.sqrt(channels)));
    const w = this.g.op('Einsum', [this.g.op('Mul', [q, scale]), this.g.op('Mul', [k, scale])], { equation: 'bct,bcs->bts' });
    const a = this.g.op('Einsum', [this.g.op('Softmax', [w], { axis: -1 }), v], { equation: 'bts,bcs->bct' });
    const out = this.conv2d(this.g.op('Reshape', [a, this.g.op('Shape', [x])]), channels, channels, { k: 1 });
    return this.g.op('Add', [x, out]);
  }

  /** Global average pool + flatten: [N, C, H, W] → [N, C]. */
  pool(x: string): string {
    return this.g.op('Flatten', [this.g.op('GlobalAveragePool', [x])], { axis: 1 });
  }
}
