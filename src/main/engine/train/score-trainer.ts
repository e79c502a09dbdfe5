/**
 * Training a score model through ONNX Runtime, as an ε-prediction U-Net (DDPM's simple loss, dg-math §1–2):
 * x_t = sqrt(ᾱ_i)·x0 + sqrt(1−ᾱ_i)·ε at a uniform step i ≤ round(t_max·(T−1)), loss = mean (ε̂ − ε)²,
 * or with EDM preconditioning (dg-math §9, edm-precond.ts: log-normal σ, EDM's λ(σ), exported as the same ε network),
 * the gradient from the project's own autodiff, AdamW with a linear warm-up, global-norm clipping,
 * an EMA of the weights and random horizontal flips — the recipe of tools/train-score-model.py,
 * with the same parameter names, so checkpoints move between the two trainers.
 *
 * Every step draws its randomness from a generator seeded by (seed, step): a resumed run makes the
 * same batches, times and noise as an uninterrupted one.
 */
import { initializersToInputs } from '../onnx/autodiff.js';
import { serializeModel, type OnnxModel } from '../onnx/ir.js';
import { withFedWeightNchwc } from '../onnx/nchwc.js';
import { createSession, ort, type OrtSession, type SessionOptions } from '../onnx/session.js';
import { withUNetWeights, type BuiltUNet, type UNetArch } from '../nn/unet.js';
import { MAX_SEED, Rng } from '../rng.js';
import type { StFile, StTensor } from '../io/safetensors.js';
import { alphaBarsFromBetas, ddpmLinearBetas } from '../models/schedules.js';
import { Adam } from './adam.js';
import { hflip } from './discriminator-trainer.js';
import { asEpsNetwork, ddpmLogSigmas, EDM_NOISE_DEFAULT, edmTrainingItem, fractionalStep, type EdmNoiseLevels } from './edm-precond.js';
import { buildScoreTrainingModel, gradOutputName, LOSS_OUTPUT, TARGET_INPUT } from './training-graph.js';

export const DDPM_STEPS = 1000;
export const CHECKPOINT_FORMAT = 'dg-studio/score-checkpoint@1';

export interface ScoreTrainerOptions {
  batchSize: number;
  lr: number;
  /** linear learning-rate warm-up, in steps */
  warmupSteps: number;
  /** EMA decay of the exported weights (with the warm-up min(decay, (1+n)/(10+n))) */
  emaDecay: number;
  /** global gradient-norm clip (0: none) */
  gradClip: number;
  weightDecay?: number;
  /** largest training time as a fraction of the schedule: steps i ≤ round(tMax·(T−1)) */
  tMax: number;
  seed: number;
  hflip: boolean;
  /** what the U-Net predicts: ε (default), or EDM's F (dg-math §9) with ln σ ~ N(noise.pMean, noise.pStd²) */
  precond?: ScorePrecond;
  noise?: EdmNoiseLevels;
  session?: SessionOptions;
}

export type ScorePrecond = 'eps' | 'edm';

/** The noise levels an EDM run trained at from each step on (a stretch may change them; checkpoints keep the list). */
export interface NoiseLevelsFrom {
  step: number;
  p_mean: number;
  p_std: number;
}

export const DEFAULT_SCORE_TRAINING: Omit<ScoreTrainerOptions, 'seed'> = {
  batchSize: 32,
  lr: 3e-4,
  warmupSteps: 200,
  emaDecay: 0.999,
  gradClip: 1,
  weightDecay: 0,
  tMax: 1,
  hflip: true,
};

// dg-math §1: the DDPM linear schedule, T = 1000, β 1e-4…0.02
export const ALPHA_BARS = alphaBarsFromBetas(ddpmLinearBetas(DDPM_STEPS));
const LOG_SIGMAS = ddpmLogSigmas(ALPHA_BARS);

/** The largest DDPM step trained for a time limit t_max ∈ (0, 1]. */
export function maxTrainingStep(tMax: number): number {
  return Math.round(tMax * (DDPM_STEPS - 1));
}

// dg-math §1: x_i = sqrt(ᾱ_i)·x0 + sqrt(1−ᾱ_i)·ε, the discrete DDPM forward process
export function diffuseDdpm(x0: Float32Array, eps: Float32Array, stepIndex: number, out: Float32Array): void {
  const ab = ALPHA_BARS[stepIndex]!;
  const a = Math.sqrt(ab);
  const s = Math.sqrt(1 - ab);
  for (let i = 0; i < x0.length; i++) out[i] = a * x0[i]! + s * eps[i]!;
}

/** The generator of one training step: a function of (seed, step) only, so resuming replays it. */
export function stepRng(seed: number, step: number): Rng {
  return new Rng((Math.imul(seed, 0x9e3779b1) + Math.imul(step, 0x85ebca6b) + step) >>> 0 || 1);
}

/** Learning rate at a step: linear warm-up to `lr` over `warmupSteps`. */
export function warmupLr(lr: number, warmupSteps: number, step: number): number {
  return lr * Math.min(1, (step + 1) / Math.max(1, warmupSteps));
}

/** EMA decay with warm-up, min(decay, (1+n)/(10+n)) (as tools/train-score-model.py). */
export function emaDecayAt(decay: number, step: number): number {
  return Math.min(decay, (1 + step) / (10 + step));
}

/** Scale gradients in place so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGradNorm(grads: Iterable<Float32Array>, maxNorm: number): number {
  const list = [...grads];
  let sq = 0;
  for (const g of list) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const f = maxNorm / (norm + 1e-6); // torch.nn.utils.clip_grad_norm_'s factor
    for (const g of list) for (let i = 0; i < g.length; i++) g[i]! *= f;
  }
  return norm;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  lr: number;
}

export interface TrainingRecord {
  step: number;
  images: number;
  wallSeconds: number;
}

export class ScoreTrainer {
  readonly params: Map<string, Float32Array>;
  readonly ema: Map<string, Float32Array>;
  readonly adam: Adam;
  step = 0;
  images = 0;
  wallSeconds = 0;
  /** EDM runs: the noise levels from each step on (the last one is this run's) */
  noiseHistory: NoiseLevelsFrom[] = [];
  private readonly shapes: Map<string, number[]>;
  readonly itemShape: number[];
  private readonly itemSize: number;

  private constructor(
    readonly net: BuiltUNet,
    readonly opts: ScoreTrainerOptions,
    private readonly train: OrtSession,
    private readonly forward: OrtSession,
  ) {
    const inits = net.model.graph.initializers;
    this.params = new Map(net.params.map((p) => [p, Float32Array.from(inits.get(p)!.data as Float32Array)]));
    this.ema = new Map(net.params.map((p) => [p, Float32Array.from(inits.get(p)!.data as Float32Array)]));
    this.shapes = new Map(net.params.map((p) => [p, inits.get(p)!.dims]));
    this.adam = new Adam(this.params, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0 });
    const a = net.arch;
    this.itemShape = [a.imageChannels, a.resolution, a.resolution];
    this.itemSize = a.imageChannels * a.resolution * a.resolution;
    if (!(opts.tMax > 0 && opts.tMax <= 1)) throw new Error(`t_max must be in (0, 1] (got ${opts.tMax})`);
    if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > MAX_SEED)
      throw new Error(`seed must be an integer from 0 to ${MAX_SEED}`);
    if (this.precond === 'edm') {
      const { pMean, pStd } = this.noise;
      if (!Number.isFinite(pMean) || !(pStd > 0))
        throw new Error(`EDM noise levels need a finite P_mean and P_std > 0 (got ${pMean}, ${pStd})`);
      this.noiseHistory = [{ step: 0, p_mean: pMean, p_std: pStd }];
    }
  }

  get precond(): ScorePrecond {
    return this.opts.precond ?? 'eps';
  }

  get noise(): EdmNoiseLevels {
    return this.opts.noise ?? EDM_NOISE_DEFAULT;
  }

  static async create(net: BuiltUNet, opts: ScoreTrainerOptions): Promise<ScoreTrainer> {
    // EDM: the U-Net trained is F, its time input the fractional step; what predicts ε̂ is F wrapped (edm-precond.ts)
    const edm = (opts.precond ?? 'eps') === 'edm';
    const f = edm ? withFloatTime(net.model) : net.model;
    const trainModel = buildScoreTrainingModel(f, 'out', net.params);
    const forward = initializersToInputs(edm ? asEpsNetwork(f, ALPHA_BARS) : f, net.params);
    const [train, fwd] = await Promise.all([
      createSession(serializeModel(await withFedWeightNchwc(trainModel, opts.session)), 'score-model training graph', {
        ...opts.session,
        memoryPattern: false,
      }),
      createSession(serializeModel(await withFedWeightNchwc(forward, opts.session)), 'score model', opts.session),
    ]);
    return new ScoreTrainer(net, opts, train, fwd);
  }

  get provider(): string {
    return this.train.provider;
  }

  get arch(): UNetArch {
    return this.net.arch;
  }

  private weightFeeds(weights: Map<string, Float32Array>): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of weights) feeds[k] = new ort.Tensor('float32', v, this.shapes.get(k)!);
    return feeds;
  }

  /**
   * The batch of step `step`: items (with replacement), flips, noise levels and noise, all from stepRng — the
   * network's input `x`, time `t` and the `target` of its output: for ε, x_t at a uniform step and ε; for EDM
   * (dg-math §9), c_in·(x0 + σ·n) at the fractional step of σ (ln σ ~ N(P_mean, P_std²), clamped to the trained
   * steps' σ) and (x0 − c_skip·x)/c_out, with each item's σ.
   */
  makeBatch(
    data: Float32Array[],
    step: number,
  ): { x: Float32Array; t: BigInt64Array | Float32Array; target: Float32Array; sigma: Float64Array } {
    const rng = stepRng(this.opts.seed, step);
    const B = this.opts.batchSize;
    const n = this.itemSize;
    const x = new Float32Array(B * n);
    const target = new Float32Array(B * n);
    const sigma = new Float64Array(B);
    const edm = this.precond === 'edm';
    const t = edm ? new Float32Array(B) : new BigInt64Array(B);
    const flipped = new Float32Array(n);
    const noise = new Float32Array(n);
    const hi = maxTrainingStep(this.opts.tMax);
    const { pMean, pStd } = this.noise;
    for (let b = 0; b < B; b++) {
      let x0 = data[Math.floor(rng.uniform() * data.length)]!;
      if (this.opts.hflip && rng.uniform() < 0.5) {
        hflip(x0, this.itemShape, flipped);
        x0 = flipped;
      }
      const xb = x.subarray(b * n, (b + 1) * n);
      const yb = target.subarray(b * n, (b + 1) * n);
      if (edm) {
        const lnSigma = Math.min(Math.max(pMean + pStd * rng.normal(), LOG_SIGMAS[0]!), LOG_SIGMAS[hi]!);
        sigma[b] = Math.exp(lnSigma);
        t[b] = fractionalStep(lnSigma, LOG_SIGMAS, hi);
        rng.fillNormal(noise);
        edmTrainingItem(x0, noise, sigma[b]!, xb, yb);
      } else {
        const i = Math.floor(rng.uniform() * (hi + 1));
        t[b] = BigInt(i);
        sigma[b] = Math.exp(LOG_SIGMAS[i]!);
        rng.fillNormal(yb);
        diffuseDdpm(x0, yb, i, xb);
      }
    }
    return { x, t, target, sigma };
  }

  /** One AdamW step on the batch of the current step. */
  async trainStep(data: Float32Array[]): Promise<StepResult> {
    if (!data.length) throw new Error('no training images');
    const started = performance.now();
    const B = this.opts.batchSize;
    const { x, t, target } = this.makeBatch(data, this.step);
    const out = await this.train.session.run({
      ...this.weightFeeds(this.params),
      x: new ort.Tensor('float32', x, [B, ...this.itemShape]),
      t: t instanceof Float32Array ? new ort.Tensor('float32', t, [B]) : new ort.Tensor('int64', t, [B]),
      [TARGET_INPUT]: new ort.Tensor('float32', target, [B, ...this.itemShape]),
    });
    const loss = (out[LOSS_OUTPUT]!.data as Float32Array)[0]!;
    if (!Number.isFinite(loss))
      throw new Error(`score-model training diverged at step ${this.step} (loss ${loss}); lower the learning rate`);
    const grads = new Map([...this.params.keys()].map((k) => [k, out[gradOutputName(k)]!.data as Float32Array]));
    const gradNorm = clipGradNorm(grads.values(), this.opts.gradClip);
    const lr = warmupLr(this.opts.lr, this.opts.warmupSteps, this.step);
    this.adam.step(grads, lr);
    const d = emaDecayAt(this.opts.emaDecay, this.step);
    for (const [k, p] of this.params) {
      const e = this.ema.get(k)!;
      for (let i = 0; i < p.length; i++) e[i] = d * e[i]! + (1 - d) * p[i]!;
    }
    this.step++;
    this.images += B;
    this.wallSeconds += (performance.now() - started) / 1000;
    return { loss, gradNorm, lr };
  }

  /** ε̂ of the EMA (default) or raw weights for a batch of noised items. */
  async predict(x: Float32Array, t: number[], which: 'ema' | 'raw' = 'ema'): Promise<Float32Array> {
    const n = t.length;
    const out = await this.forward.session.run({
      ...this.weightFeeds(which === 'ema' ? this.ema : this.params),
      x: new ort.Tensor('float32', x, [n, ...this.itemShape]),
      t: new ort.Tensor('int64', BigInt64Array.from(t, BigInt), [n]),
    });
    return out['out']!.data as Float32Array;
  }

  /**
   * Held-out denoising error: mean ε-MSE of the EMA model at each time fraction (DDPM step
   * round(t·(T−1))), with noise fixed by `seed` so that evaluations over a run are comparable.
   */
  async heldoutError(items: Float32Array[], times: number[], seed = 777, chunk = 32): Promise<number[]> {
    const rng = new Rng(seed);
    const n = this.itemSize;
    const result: number[] = [];
    for (const time of times) {
      const i = Math.round(time * (DDPM_STEPS - 1));
      let sq = 0;
      for (let s = 0; s < items.length; s += chunk) {
        const part = items.slice(s, s + chunk);
        const eps = rng.fillNormal(new Float32Array(part.length * n));
        const x = new Float32Array(part.length * n);
        part.forEach((x0, b) => diffuseDdpm(x0, eps.subarray(b * n, (b + 1) * n), i, x.subarray(b * n, (b + 1) * n)));
        const pred = await this.predict(x, Array(part.length).fill(i));
        for (let k = 0; k < pred.length; k++) sq += (pred[k]! - eps[k]!) ** 2;
      }
      result.push(sq / (items.length * n));
    }
    return result;
  }

  /** The inference graph with the EMA weights baked in (inputs x, t int64; output out = ε̂, EDM's F wrapped so). */
  exportModel(metadata: Record<string, string> = {}): OnnxModel {
    const weighted = withUNetWeights(this.net, (p) => this.ema.get(p), 'EMA weights');
    const m = this.precond === 'edm' ? asEpsNetwork(weighted, ALPHA_BARS) : weighted;
    return { ...m, metadata: { ...m.metadata, ...metadata } };
  }

  /** Weights, EMA and Adam moments (bfloat16 unless asked otherwise) with the training record. */
  checkpoint(extra: Record<string, string> = {}, moments: 'BF16' | 'F32' = 'BF16'): StFile {
    const tensors = new Map<string, StTensor>();
    const put = (prefix: string, src: Map<string, Float32Array>, dtype: 'F32' | 'BF16') => {
      for (const [k, v] of src) tensors.set(`${prefix}.${k}`, { dtype, shape: this.shapes.get(k)!, data: v });
    };
    put('model', this.params, 'F32');
    put('ema', this.ema, 'F32');
    if (this.adam.stepCount > 0) {
      put('adam_m', this.adam.m, moments);
      put('adam_v', this.adam.v, moments);
    }
    const a = this.net.arch;
    const o = this.opts;
    return {
      tensors,
      metadata: {
        format: CHECKPOINT_FORMAT,
        trainer: 'dg-studio train-score-model',
        // the same keys as tools/train-score-model.py, which compares them on --resume
        arch: JSON.stringify({
          ch: a.channels,
          mult: a.mult,
          attn: a.attn,
          groups: a.groups,
          patch: a.patch,
          // recorded only when not ε (as the PyTorch trainer does), so ε checkpoints stay as they were
          ...(this.precond !== 'eps' ? { precond: this.precond } : {}),
        }),
        ...(this.precond === 'edm' ? { noise_history: JSON.stringify(this.noiseHistory) } : {}),
        resolution: String(a.resolution),
        t_max: String(o.tMax),
        step: String(this.step),
        images: String(this.images),
        wall_seconds: this.wallSeconds.toFixed(1),
        adam_step: String(this.adam.stepCount),
        batch: String(o.batchSize),
        lr: String(o.lr),
        warmup: String(o.warmupSteps),
        ema: String(o.emaDecay),
        seed: String(o.seed),
        ...extra,
      },
    };
  }

  /** Continue from a checkpoint of either trainer (same architecture); `source` names it in errors. */
  restore(file: StFile, source: string): void {
    const get = (prefix: string, k: string) => file.tensors.get(`${prefix}.${k}`)?.data;
    for (const [k, p] of this.params) {
      const w = get('model', k);
      const e = get('ema', k);
      if (!w || !e) throw new Error(`${source}: has no weights for "${k}" (a checkpoint of another architecture?)`);
      if (w.length !== p.length) throw new Error(`${source}: "${k}" has ${w.length} values; this architecture needs ${p.length}`);
      p.set(w);
      this.ema.get(k)!.set(e);
      const m = get('adam_m', k);
      const v = get('adam_v', k);
      if (m && v) {
        this.adam.m.get(k)!.set(m);
        this.adam.v.get(k)!.set(v);
      }
    }
    const num = (key: string, fallback = 0) => {
      const v = Number(file.metadata[key] ?? fallback);
      if (!Number.isFinite(v)) throw new Error(`${source}: metadata "${key}" is not a number`);
      return v;
    };
    this.step = num('step');
    this.images = num('images', this.step * this.opts.batchSize);
    this.wallSeconds = num('wall_seconds');
    this.adam.stepCount = num('adam_step', this.step);
    if (this.precond === 'edm') this.noiseHistory = continuedNoiseHistory(file, source, this.step, this.noise);
  }

  async dispose(): Promise<void> {
    await this.train.session.release();
    await this.forward.session.release();
  }
}

/** The network with a float time input (EDM's F takes the fractional step; its embedding casts either). */
function withFloatTime(m: OnnxModel): OnnxModel {
  const inputs = m.graph.inputs.map((i) => (i.name === 't' ? { ...i, dtype: 'float32' as const } : i));
  return { ...m, graph: { ...m.graph, inputs } };
}

type CheckpointArch = { ch: number; mult: number[]; attn: number[]; groups: number; patch?: number; precond?: string };

function parseCheckpointArch(file: StFile, source: string): CheckpointArch {
  try {
    return JSON.parse(file.metadata['arch'] ?? '') as CheckpointArch;
  } catch {
    throw new Error(`${source}: not a score-model checkpoint (no architecture in its metadata)`);
  }
}

/**
 * What a checkpoint's U-Net predicts: ε, or EDM's F (dg-math §9; both trainers record `precond` in the
 * architecture only when not ε). The same weights mean something else under the other one.
 */
export function checkpointPrecond(file: StFile, source: string): ScorePrecond {
  const p = parseCheckpointArch(file, source).precond ?? 'eps';
  if (p !== 'eps' && p !== 'edm')
    throw new Error(
      `${source}: made with ${String(p).toUpperCase()} preconditioning, which this trainer does not train (it trains ε and EDM)`,
    );
  return p;
}

/** An EDM checkpoint's noise-level history (PyTorch checkpoints from before the history kept one pair in the architecture). */
export function checkpointNoiseHistory(file: StFile, source: string): NoiseLevelsFrom[] {
  let history: NoiseLevelsFrom[];
  try {
    history = JSON.parse(file.metadata['noise_history'] ?? '[]') as NoiseLevelsFrom[];
  } catch {
    throw new Error(`${source}: metadata "noise_history" is not JSON`);
  }
  const legacy = parseCheckpointArch(file, source) as { p_mean?: number; p_std?: number };
  if (!history.length && legacy.p_mean !== undefined && legacy.p_std !== undefined)
    history = [{ step: 0, p_mean: legacy.p_mean, p_std: legacy.p_std }];
  return history;
}

/** The history continued at `step` with this run's levels when they differ from its last. */
function continuedNoiseHistory(file: StFile, source: string, step: number, now: EdmNoiseLevels): NoiseLevelsFrom[] {
  const history = checkpointNoiseHistory(file, source);
  const last = history.at(-1);
  if (!last) return [{ step: 0, p_mean: now.pMean, p_std: now.pStd }];
  return last.p_mean === now.pMean && last.p_std === now.pStd ? history : [...history, { step, p_mean: now.pMean, p_std: now.pStd }];
}

/** The architecture a checkpoint was made with (both trainers write the same keys). */
export function checkpointArch(file: StFile, source: string): UNetArch {
  const a = parseCheckpointArch(file, source);
  return {
    channels: a.ch,
    mult: a.mult,
    attn: a.attn,
    groups: a.groups,
    patch: a.patch ?? 1,
    resolution: Number(file.metadata['resolution'] ?? 64),
    imageChannels: 3,
  };
}
