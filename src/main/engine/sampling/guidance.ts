/**
 * Guidance terms (dg-math §4–§5). A sampler only sees a GuidanceHook: data in (x_ve, σ_ve),
 * a weighted score correction out. Whether it came from a closed form, a trained ONNX
 * discriminator or a classifier is not the sampler's business.
 */
import { alphaFromSigmaVe, lvpTimeFromSigmaVe, type LvpParams, LVP_DEFAULT } from '../models/schedules.js';
import { axpy, filled, itemSize, scale, type Tensor } from '../tensor.js';

/**
 * A time-conditioned critic in LVP coordinates: the discriminator's log r = log(d/(1-d))
 * (dg-math §4) or a classifier's log p(y|x), with its gradient w.r.t. x_vp.
 */
export interface Critic {
  readonly name: string;
  /** true for closed-form log ratios, which are not bounded by a clipped d (no clipping) */
  readonly exact?: boolean;
  evaluate(xVp: Tensor, tauLvp: Float64Array): Promise<{ value: Float64Array; grad: Tensor }>;
}

export interface GuidanceContext {
  stepIndex: number;
  /** 1: the Euler (first) stage of a step; 2: Heun's correction stage. */
  stage: 1 | 2;
}

export interface GuidanceHook {
  /** Weighted score correction Δs in VE coordinates (s ← s + Δs), or null for none. */
  scoreCorrection(xVe: Tensor, sigmaVe: Float64Array, ctx: GuidanceContext): Promise<Tensor | null>;
  /** Extra S_churn per item for this step (adaptive boosting), or null. */
  churnFor?(stepIndex: number): Float64Array | null;
}

/** |log r| bound from clipping d to [1e-5, 1 - 1e-5] (dg-math §4). */
export const LOG_RATIO_CLIP = Math.log((1 - 1e-5) / 1e-5);

// dg-math §4: evaluate a critic at a VE state: τ = τ(σ), x_vp = α(τ)·x, ∇_{x_ve} = α(τ)·∇_{x_vp}
export async function criticAtVeState(
  critic: Critic,
  xVe: Tensor,
  sigmaVe: Float64Array,
  lvp: LvpParams = LVP_DEFAULT,
): Promise<{ value: Float64Array; gradVe: Tensor; tauLvp: Float64Array }> {
  const alpha = sigmaVe.map(alphaFromSigmaVe);
  const tauLvp = sigmaVe.map((s) => lvpTimeFromSigmaVe(s, lvp));
  // x_vp = α·x_ve, so ∇_{x_ve} = α·∇_{x_vp}
  const { value, grad } = await critic.evaluate(scale(xVe, alpha), tauLvp);
  return { value, gradVe: scale(grad, alpha), tauLvp };
}

// dg-math §4: log r from d = sigmoid(logit) clipped to [1e-5, 1-1e-5]; its gradient is 0 where clipped
export function clipLogRatio(logRatio: Float64Array, grad: Tensor, clip = LOG_RATIO_CLIP): Float64Array {
  const per = itemSize(grad);
  const out = new Float64Array(logRatio.length);
  for (let n = 0; n < logRatio.length; n++) {
    const v = logRatio[n]!;
    if (Math.abs(v) > clip) {
      out[n] = Math.sign(v) * clip;
      grad.data.fill(0, n * per, (n + 1) * per);
    } else out[n] = v;
  }
  return out;
}

export interface DgOptions {
  /** weight on the Euler / only stage */
  w1: number;
  /** weight on Heun's second stage; paper default 0 (no discriminator call there) */
  w2?: number;
  /** apply only while τ ∈ [τmin, τmax] (reference defaults 0.01, 1.0) */
  window?: [number, number];
  /** |log r| clip; default from d ∈ [1e-5, 1-1e-5], none for exact critics */
  logRatioClip?: number;
  /** adaptive boosting (dg-math §5) */
  boosting?: { period: number; factor?: number; churn?: number; maxFactor?: number };
  lvp?: LvpParams;
}

export interface DgDiagnostics {
  stepIndex: number;
  tauLvp: Float64Array;
  logRatio: Float64Array;
  weights: Float64Array;
}

/**
 * Discriminator Guidance (dg-math §4–§5): Δs = w·∇_{x_ve} log r inside the window.
 * Holds per-item weights so boosting can raise them for items the critic calls fake.
 */
export function discriminatorGuidance(
  critic: Critic,
  batch: number,
  opts: DgOptions,
  onDiagnostics?: (d: DgDiagnostics) => void,
): GuidanceHook {
  const [tauMin, tauMax] = opts.window ?? [0.01, 1.0];
  const clip = opts.logRatioClip ?? (critic.exact ? Infinity : LOG_RATIO_CLIP);
  const boost = opts.boosting;
  const factor = boost?.factor ?? 2;
  const maxFactor = boost?.maxFactor ?? 8;
  const gain = filled(batch, 1);
  let lastLogRatio: Float64Array | null = null;

  const isBoostStep = (stepIndex: number) => !!boost && stepIndex > 0 && stepIndex % boost.period === 0;

  return {
    async scoreCorrection(xVe, sigmaVe, ctx) {
      const w = ctx.stage === 1 ? opts.w1 : (opts.w2 ?? 0);
      if (w === 0) return null;
      const tau = sigmaVe.map((s) => lvpTimeFromSigmaVe(s, opts.lvp));
      const inWindow = tau.map((t) => (t >= tauMin && t <= tauMax ? 1 : 0));
      if (inWindow.every((v) => v === 0)) return null;
      const { value, gradVe, tauLvp } = await criticAtVeState(critic, xVe, sigmaVe, opts.lvp);
      const logRatio = clipLogRatio(value, gradVe, clip);
      // dg-math §5 adaptive boosting: items the critic calls fake (log r < 0) get ×factor
      if (ctx.stage === 1 && isBoostStep(ctx.stepIndex) && lastLogRatio) {
        for (let n = 0; n < batch; n++) if (lastLogRatio[n]! < 0) gain[n] = Math.min(maxFactor, gain[n]! * factor);
      }
      if (ctx.stage === 1) lastLogRatio = logRatio;
      const weights = gain.map((g, n) => w * g * inWindow[n]!);
      onDiagnostics?.({ stepIndex: ctx.stepIndex, tauLvp, logRatio, weights });
      return scale(gradVe, weights);
    },
    churnFor(stepIndex) {
      if (!boost?.churn || !isBoostStep(stepIndex) || !lastLogRatio) return null;
      return lastLogRatio.map((v) => (v < 0 ? boost.churn! : 0));
    },
  };
}

/** Classifier guidance (dg-math §5, Eq. 6): Δs = w_CG·∇_{x_ve} log p(y|x_t). */
export function classifierGuidance(classifier: Critic, weight: number, lvp: LvpParams = LVP_DEFAULT): GuidanceHook {
  return {
    async scoreCorrection(xVe, sigmaVe) {
      if (weight === 0) return null;
      const { gradVe } = await criticAtVeState(classifier, xVe, sigmaVe, lvp);
      return scale(gradVe, weight);
    },
  };
}

/** s_θ + Σ_k Δs_k: several guidance terms at once (dg-math §5, Eq. 6). */
export function combineGuidance(...hooks: GuidanceHook[]): GuidanceHook {
  return {
    async scoreCorrection(xVe, sigmaVe, ctx) {
      let total: Tensor | null = null;
      for (const h of hooks) {
        const c = await h.scoreCorrection(xVe, sigmaVe, ctx);
        if (!c) continue;
        total = total ? axpy(1, c, total) : c;
      }
      return total;
    },
    churnFor(stepIndex) {
      let total: Float64Array | null = null;
      for (const h of hooks) {
        const c = h.churnFor?.(stepIndex);
        if (!c) continue;
        total = total ? total.map((v, i) => v + c[i]!) : c;
      }
      return total;
    },
  };
}
