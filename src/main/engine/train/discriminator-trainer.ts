/**
 * Training a time-conditioned discriminator through ONNX Runtime (paper Algorithm 1,
 * dg-math §4): clean images are diffused with the LVP forward process at sampled τ
 * (never stored trajectories), real = label 1, fake = label 0, a density-ratio loss,
 * Adam over Float32Arrays.
 */
import { initializersToInputs } from '../onnx/autodiff.js';
import { serializeModel, type OnnxModel } from '../onnx/ir.js';
import { withFedWeightNchwc } from '../onnx/nchwc.js';
import { createSession, ort, type OrtSession, type SessionOptions } from '../onnx/session.js';
import type { BuiltNet } from '../nn/discriminator-net.js';
import { Rng } from '../rng.js';
import {
  importanceSampledLvpTime,
  lvpAlpha,
  lvpIntegratedBeta,
  lvpSigma,
  LVP_DEFAULT,
  LVP_TAU_MIN,
  type LvpParams,
} from '../models/schedules.js';
import { Adam, type AdamState } from './adam.js';
import { buildTrainingModel, gradOutputName, LABEL_INPUT, LOSS_OUTPUT, WEIGHT_INPUT, type RatioLoss } from './training-graph.js';

/** The class input of conditional discriminators (see buildDiscriminatorNet). */
export const CLASS_INPUT = 'class_label';

/** Adam's learning rate when a run names none (the CLI's, the studio's and the service's default). */
export const DEFAULT_DISCRIMINATOR_LR = 2e-3;

export interface TrainerOptions {
  loss: RatioLoss;
  batchSize: number;
  lr: number;
  /**
   * cosine decay of the learning rate from `lr` to 0 at this step (the run's last; 0 or absent: constant) —
   * the weights settle instead of ending wherever the last noisy steps left them
   */
  cosineSteps?: number;
  weightDecay?: number;
  /** LVP times to train at; for image-to-image only τ ≤ t0 matters */
  tauRange: [number, number];
  timeSampling: 'importance' | 'uniform';
  lvp?: LvpParams;
  seed: number;
  /** random horizontal flips of [C, H, W] items */
  hflip?: boolean;
  /**
   * dg-math §10: label smoothing ε — real items' targets 1 − ε, fake items' ε (BCE only: its loss takes soft
   * targets), so the logits settle at ±log((1 − ε)/ε) instead of growing without bound on what it separates
   */
  labelSmoothing?: number;
  /** dg-math §10: R1 weight γ — the loss adds (γ/2)·E_real ‖∇x logit‖², penalising sharp input gradients (speckle under DG) */
  r1Gamma?: number;
  /** class of each item, for a class-conditional network (one with a `class_label` input) */
  classOf?: (item: Float32Array) => number;
  session?: SessionOptions;
}

/** dg-math §10: the learning rate at `step` of a cosine decay from `lr` to 0 at step `total` (constant when total ≤ 0). */
export function cosineLearningRate(lr: number, step: number, total: number): number {
  if (total <= 0) return lr;
  return (lr / 2) * (1 + Math.cos(Math.PI * Math.min(1, step / total)));
}

export interface BandStats {
  lo: number;
  hi: number;
  accuracy: number;
  loss: number;
  count: number;
}

export interface Checkpoint {
  step: number;
  params: Record<string, Float32Array>;
  adam: AdamState;
}

// dg-math §4: the importance-sampling CDF, F(τ) = (A(τ) - A(τmin)) / (A(1) - A(τmin))
function importanceCdf(tau: number, p: LvpParams): number {
  const A = (t: number) => {
    const b = lvpIntegratedBeta(t, p);
    return Math.log(-Math.expm1(-b)) + b;
  };
  return (A(tau) - A(LVP_TAU_MIN)) / (A(1) - A(LVP_TAU_MIN));
}

/** dg-math §10: the first `real` items' targets 1 − ε, the rest ε (ε = 0: the hard labels 1 and 0). */
export function smoothedLabels(n: number, real: number, epsilon: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (i < real ? 1 - epsilon : epsilon));
}

/** τ for u ~ U(0,1), importance-sampled (dg-math §4) or uniform, restricted to [lo, hi]. */
export function sampleTrainingTime(u: number, range: [number, number], kind: 'importance' | 'uniform', p: LvpParams = LVP_DEFAULT): number {
  const [lo, hi] = [Math.max(range[0], LVP_TAU_MIN), Math.min(range[1], 1)];
  if (kind === 'uniform') return lo + u * (hi - lo);
  const [a, b] = [importanceCdf(lo, p), importanceCdf(hi, p)];
  return importanceSampledLvpTime(a + u * (b - a), p);
}

// dg-math §4: x_τ = α(τ)·x0 + σ(τ)·ε, the LVP forward process from a clean item
export function diffuseLvp(x0: Float32Array, tau: number, rng: Rng, out: Float32Array, p: LvpParams = LVP_DEFAULT): void {
  const a = lvpAlpha(tau, p);
  const s = lvpSigma(tau, p);
  for (let i = 0; i < x0.length; i++) out[i] = a * x0[i]! + s * rng.normal();
}

/** Mirror a [C, H, W] item left–right into `out` (both trainers' flip augmentation). */
export function hflip(x: Float32Array, shape: readonly number[], out: Float32Array): void {
  const w = shape[shape.length - 1]!;
  for (let row = 0; row < x.length / w; row++) {
    for (let c = 0; c < w; c++) out[row * w + c] = x[row * w + (w - 1 - c)]!;
  }
}

export class DiscriminatorTrainer {
  readonly params: Map<string, Float32Array>;
  readonly adam: Adam;
  readonly rng: Rng;
  step = 0;
  private readonly shapes: Map<string, number[]>;
  private readonly itemSize: number;
  private readonly conditional: boolean;

  private constructor(
    readonly net: BuiltNet,
    readonly dataShape: number[],
    readonly opts: TrainerOptions,
    private readonly train: OrtSession,
    private readonly evalSession: OrtSession,
  ) {
    const inits = net.model.graph.initializers;
    this.params = new Map(net.params.map((p) => [p, Float32Array.from(inits.get(p)!.data as Float32Array)]));
    this.shapes = new Map(net.params.map((p) => [p, inits.get(p)!.dims]));
    this.adam = new Adam(this.params, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0 });
    this.rng = new Rng(opts.seed);
    this.itemSize = dataShape.reduce((a, b) => a * b, 1);
    this.conditional = net.model.graph.inputs.some((i) => i.name === CLASS_INPUT);
    if (this.conditional && !opts.classOf) throw new Error('a class-conditional discriminator needs the class of every training image');
  }

  /** The class-label feed for a conditional network (nothing for an unconditional one). */
  private classFeed(items: Float32Array[]): Record<string, ort.Tensor> {
    if (!this.conditional) return {};
    return {
      [CLASS_INPUT]: new ort.Tensor(
        'int64',
        BigInt64Array.from(items, (x) => BigInt(this.opts.classOf!(x))),
        [items.length],
      ),
    };
  }

  static async create(net: BuiltNet, dataShape: number[], opts: TrainerOptions): Promise<DiscriminatorTrainer> {
    const eps = opts.labelSmoothing ?? 0;
    if (!(eps >= 0 && eps < 0.5)) throw new Error(`label smoothing must be in [0, 0.5), got ${eps}`);
    if (eps > 0 && opts.loss !== 'bce')
      throw new Error(
        `label smoothing needs the BCE loss (its targets may be soft); the ${opts.loss.toUpperCase()} loss takes hard labels`,
      );
    if (!((opts.r1Gamma ?? 0) >= 0)) throw new Error(`the R1 weight must be ≥ 0, got ${opts.r1Gamma}`);
    const trainModel = buildTrainingModel(net.model, 'logit', net.params, opts.loss, { r1Gamma: opts.r1Gamma ?? 0 });
    const evalModel = initializersToInputs(net.model, net.params);
    const [train, ev] = await Promise.all([
      createSession(serializeModel(await withFedWeightNchwc(trainModel, opts.session)), 'discriminator training graph', {
        ...opts.session,
        memoryPattern: false,
      }),
      createSession(serializeModel(await withFedWeightNchwc(evalModel, opts.session)), 'discriminator', opts.session),
    ]);
    return new DiscriminatorTrainer(net, dataShape, opts, train, ev);
  }

  get provider(): string {
    return this.train.provider;
  }

  private paramFeeds(): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of this.params) feeds[k] = new ort.Tensor('float32', v, this.shapes.get(k)!);
    return feeds;
  }

  /** A batch of diffused items; `times` and `items` give τ and the clean items. */
  private diffusedBatch(items: Float32Array[], times: number[], augment: boolean, rng: Rng): ort.Tensor {
    const data = new Float32Array(items.length * this.itemSize);
    const scratch = new Float32Array(this.itemSize);
    items.forEach((x0, i) => {
      let src = x0;
      if (augment && this.opts.hflip && this.dataShape.length === 3 && rng.uniform() < 0.5) {
        hflip(x0, this.dataShape, scratch);
        src = scratch;
      }
      diffuseLvp(src, times[i]!, rng, data.subarray(i * this.itemSize, (i + 1) * this.itemSize), this.opts.lvp);
    });
    return new ort.Tensor('float32', data, [items.length, ...this.dataShape]);
  }

  /** One Adam step on a balanced batch drawn from the two sets. */
  async trainStep(real: Float32Array[], fake: Float32Array[]): Promise<number> {
    const half = this.opts.batchSize >> 1;
    const pick = (set: Float32Array[]) => Array.from({ length: half }, () => set[Math.floor(this.rng.uniform() * set.length)]!);
    const items = [...pick(real), ...pick(fake)];
    const labels = smoothedLabels(items.length, half, this.opts.labelSmoothing ?? 0);
    const times = items.map(() => sampleTrainingTime(this.rng.uniform(), this.opts.tauRange, this.opts.timeSampling, this.opts.lvp));
    const out = await this.train.session.run({
      ...this.paramFeeds(),
      ...this.classFeed(items),
      x: this.diffusedBatch(items, times, true, this.rng),
      t: new ort.Tensor('float32', Float32Array.from(times), [items.length]),
      [LABEL_INPUT]: new ort.Tensor('float32', labels, [items.length]),
      [WEIGHT_INPUT]: new ort.Tensor('float32', new Float32Array(items.length).fill(1), [items.length]),
    });
    const loss = (out[LOSS_OUTPUT]!.data as Float32Array)[0]!;
    if (!Number.isFinite(loss))
      throw new Error(`discriminator training diverged at step ${this.step} (loss ${loss}); lower the learning rate`);
    const grads = new Map([...this.params.keys()].map((k) => [k, out[gradOutputName(k)]!.data as Float32Array]));
    this.adam.step(grads, cosineLearningRate(this.opts.lr, this.step, this.opts.cosineSteps ?? 0));
    this.step++;
    return loss;
  }

  /** Logits of items diffused to the given times (a fixed seed makes evaluations comparable). */
  async logits(items: Float32Array[], times: number[], seed: number): Promise<Float32Array> {
    const rng = new Rng(seed);
    const out = new Float32Array(items.length);
    const chunk = Math.max(1, this.opts.batchSize);
    for (let s = 0; s < items.length; s += chunk) {
      const part = items.slice(s, s + chunk);
      const r = await this.evalSession.session.run({
        ...this.paramFeeds(),
        ...this.classFeed(part),
        x: this.diffusedBatch(part, times.slice(s, s + chunk), false, rng),
        t: new ort.Tensor('float32', Float32Array.from(times.slice(s, s + chunk)), [part.length]),
      });
      out.set(r['logit']!.data as Float32Array, s);
    }
    return out;
  }

  /** Validation accuracy and BCE per τ band: every item is evaluated once in every band. */
  async evaluate(
    real: Float32Array[],
    fake: Float32Array[],
    bands: number,
    seed = 12345,
  ): Promise<{ bands: BandStats[]; accuracy: number; loss: number }> {
    const [lo, hi] = this.opts.tauRange;
    const edges = Array.from({ length: bands + 1 }, (_, i) => lo + ((hi - lo) * i) / bands);
    const items = [...real, ...fake];
    const rng = new Rng(seed);
    const stats: BandStats[] = [];
    for (let b = 0; b < bands; b++) {
      const times = items.map(() => edges[b]! + rng.uniform() * (edges[b + 1]! - edges[b]!));
      const z = await this.logits(items, times, seed + b);
      let correct = 0;
      let loss = 0;
      z.forEach((v, i) => {
        const y = i < real.length ? 1 : 0;
        if ((v > 0 ? 1 : 0) === y) correct++;
        loss += Math.log1p(Math.exp(-Math.abs(v))) + Math.max(v, 0) - y * v; // softplus(z) - y·z, stable
      });
      stats.push({ lo: edges[b]!, hi: edges[b + 1]!, accuracy: correct / items.length, loss: loss / items.length, count: items.length });
    }
    const mean = (f: (s: BandStats) => number) => stats.reduce((a, s) => a + f(s), 0) / stats.length;
    return { bands: stats, accuracy: mean((s) => s.accuracy), loss: mean((s) => s.loss) };
  }

  /** The forward network with the trained weights baked in. */
  exportForward(metadata: Record<string, string> = {}): OnnxModel {
    const m = this.net.model;
    const initializers = new Map(m.graph.initializers);
    for (const [k, v] of this.params) initializers.set(k, { dtype: 'float32', dims: this.shapes.get(k)!, data: Float32Array.from(v) });
    return { ...m, graph: { ...m.graph, initializers }, metadata: { ...m.metadata, ...metadata } };
  }

  checkpoint(): Checkpoint {
    return {
      step: this.step,
      params: Object.fromEntries([...this.params].map(([k, v]) => [k, Float32Array.from(v)])),
      adam: this.adam.state(),
    };
  }

  restore(c: Checkpoint): void {
    for (const [k, v] of Object.entries(c.params)) {
      const p = this.params.get(k);
      if (!p || p.length !== v.length) throw new Error(`checkpoint does not match this architecture (parameter "${k}")`);
      p.set(v);
    }
    this.adam.load(c.adam);
    this.step = c.step;
  }

  async dispose(): Promise<void> {
    await this.train.session.release();
    await this.evalSession.session.release();
  }
}
