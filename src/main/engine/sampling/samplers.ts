/**
 * Guided samplers in the canonical VE form (dg-math §5; NVlabs/edm generate.py and
 * k-diffusion sampling.py). Every sampler has one shape:
 *   (denoise, x at sigmas[0], sigmas descending to 0, options) → x at σ = 0
 * and starts wherever sigmas[0] says, so SDEdit is just a shorter ladder.
 */
import type { Denoiser } from './denoiser.js';
import type { GuidanceHook } from './guidance.js';
import type { BatchRng } from '../rng.js';
import { axpy, combinePerItem, filled, type Tensor } from '../tensor.js';

export interface StepInfo {
  stepIndex: number;
  totalSteps: number;
  sigma: number;
  /** current state x at sigmas[stepIndex + 1] */
  x: Tensor;
  /** the denoiser's x̂0 at this step: a preview of the result */
  denoised: Tensor;
}

export interface ChurnOptions {
  /** EDM S_churn: total stochasticity over the run (0: deterministic ODE) */
  sChurn: number;
  sTmin: number;
  sTmax: number;
  sNoise: number;
}

export const NO_CHURN: ChurnOptions = { sChurn: 0, sTmin: 0, sTmax: Infinity, sNoise: 1 };

export interface SamplerOptions {
  rng: BatchRng;
  guidance?: GuidanceHook | undefined;
  churn?: Partial<ChurnOptions> | undefined;
  /** DDIM η (0: deterministic DDIM, 1: DDPM ancestral) */
  eta?: number | undefined;
  onStep?: ((info: StepInfo) => void | Promise<void>) | undefined;
  signal?: AbortSignal | undefined;
}

export type Sampler = (denoise: Denoiser, x: Tensor, sigmas: number[], opts: SamplerOptions) => Promise<Tensor>;

export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}

// dg-math §4: the adjusted score s + Δs is the denoiser D + σ²·Δs in VE form
export async function guidedDenoise(
  denoise: Denoiser,
  x: Tensor,
  sigma: Float64Array,
  guidance: GuidanceHook | undefined,
  stepIndex: number,
  stage: 1 | 2,
): Promise<Tensor> {
  const denoised = await denoise(x, sigma);
  const correction = guidance ? await guidance.scoreCorrection(x, sigma, { stepIndex, stage }) : null;
  if (!correction) return denoised;
  return axpy(
    sigma.map((s) => s * s),
    correction,
    denoised,
  );
}

// EDM Algorithm 2, lines 4–6: raise σ to σ̂ = σ(1+γ) by adding fresh noise
export function churn(
  x: Tensor,
  sigma: number,
  totalSteps: number,
  opts: ChurnOptions,
  rng: BatchRng,
  extraChurn: Float64Array | null,
): { x: Tensor; sigmaHat: Float64Array } {
  const n = x.shape[0]!;
  const inRange = sigma >= opts.sTmin && sigma <= opts.sTmax;
  const gamma = Float64Array.from({ length: n }, (_, i) =>
    inRange ? Math.min((opts.sChurn + (extraChurn?.[i] ?? 0)) / totalSteps, Math.SQRT2 - 1) : 0,
  );
  const sigmaHat = gamma.map((g) => sigma * (1 + g));
  if (gamma.every((g) => g === 0)) return { x, sigmaHat };
  const noise = { data: rng.normal(x.shape), shape: x.shape };
  const noiseScale = sigmaHat.map((s) => Math.sqrt(Math.max(0, s * s - sigma * sigma)) * opts.sNoise);
  return { x: axpy(noiseScale, noise, x), sigmaHat };
}

// EDM Euler step: x' = x̂ + (σ_next - σ̂)·d with d = (x̂ - D)/σ̂
function eulerStep(x: Tensor, d: Tensor, sigmaHat: Float64Array, sigmaNext: number): Tensor {
  return axpy(
    sigmaHat.map((s) => sigmaNext - s),
    d,
    x,
  );
}

// dg-math §5: ODE direction d = (x - D)/σ
function odeDirection(x: Tensor, denoised: Tensor, sigma: Float64Array): Tensor {
  return combinePerItem(
    x,
    sigma.map((s) => 1 / s),
    denoised,
    sigma.map((s) => -1 / s),
  );
}

async function odeSampler(denoise: Denoiser, x0: Tensor, sigmas: number[], opts: SamplerOptions, heun: boolean) {
  const c: ChurnOptions = { ...NO_CHURN, ...opts.churn };
  const total = sigmas.length - 1;
  let x = x0;
  for (let i = 0; i < total; i++) {
    throwIfAborted(opts.signal);
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const churned = churn(x, sigma, total, c, opts.rng, opts.guidance?.churnFor?.(i) ?? null);
    const { sigmaHat } = churned;
    const denoised = await guidedDenoise(denoise, churned.x, sigmaHat, opts.guidance, i, 1);
    const d = odeDirection(churned.x, denoised, sigmaHat);
    x = eulerStep(churned.x, d, sigmaHat, sigmaNext);
    if (heun && sigmaNext > 0) {
      // EDM Algorithm 2, lines 9–11: second-order correction, guided with w2
      const next = filled(sigmaHat.length, sigmaNext);
      const denoised2 = await guidedDenoise(denoise, x, next, opts.guidance, i, 2);
      const d2 = odeDirection(x, denoised2, next);
      const dMean = combinePerItem(d, 0.5, d2, 0.5);
      x = eulerStep(churned.x, dMean, sigmaHat, sigmaNext);
    }
    await opts.onStep?.({ stepIndex: i, totalSteps: total, sigma, x, denoised });
  }
  return x;
}

/** Euler PF-ODE in EDM form, with optional churn (dg-math §5). */
export const sampleEuler: Sampler = (denoise, x, sigmas, opts) => odeSampler(denoise, x, sigmas, opts, false);

/** Heun PF-ODE in EDM form (EDM Algorithm 2), guidance w1 on stage 1 and w2 on stage 2 (dg-math §5). */
export const sampleHeun: Sampler = (denoise, x, sigmas, opts) => odeSampler(denoise, x, sigmas, opts, true);

// x + σ_up·z with fresh noise from each item's generator (no draw when σ_up = 0)
function addNoise(x: Tensor, up: number, rng: BatchRng): Tensor {
  return up > 0 ? axpy(up, { data: rng.normal(x.shape), shape: x.shape }, x) : x;
}

// DDIM(η) in VE form: σ_up = η·sqrt(σ_next²(σ² - σ_next²)/σ²), σ_down = sqrt(σ_next² - σ_up²)
export function ancestralSigmas(sigma: number, sigmaNext: number, eta: number): { up: number; down: number } {
  if (sigmaNext === 0) return { up: 0, down: 0 };
  const up = Math.min(sigmaNext, eta * Math.sqrt((sigmaNext ** 2 * (sigma ** 2 - sigmaNext ** 2)) / sigma ** 2));
  return { up, down: Math.sqrt(sigmaNext ** 2 - up ** 2) };
}

/**
 * DDIM with η (dg-math §5): with ε̂ = (x - D)/σ the update is x' = D + σ_down·ε̂ + σ_up·z.
 * Guidance enters through D, which is exactly ε̂ ← ε̂ - w·σ_vp·∇_{x_vp} log r.
 * η = 1 is DDPM ancestral sampling with the posterior variance.
 */
export const sampleDdim: Sampler = (denoise, x0, sigmas, opts) => {
  const eta = opts.eta ?? 0;
  return oneEvaluationSteps(denoise, x0, sigmas, opts, (x, denoised, sigma, sigmaNext) => {
    const { up, down } = ancestralSigmas(sigma, sigmaNext, eta);
    const eps = odeDirection(x, denoised, filled(x.shape[0]!, sigma));
    return addNoise(axpy(down, eps, denoised), up, opts.rng);
  });
};

/**
 * DDPM ancestral (dg-math §5): the posterior q(x_{t-1} | x_t, x̂0), i.e. DDIM with η = 1.
 * The guided mean is μ + w·β_t/sqrt(1-β_t)·∇_{x_vp} log r in VP coordinates (the DDPM mean's
 * score coefficient; ADM's Σ_t = β_t to first order).
 */
export const sampleDdpm: Sampler = (denoise, x, sigmas, opts) => sampleDdim(denoise, x, sigmas, { ...opts, eta: 1 });

/**
 * Euler ancestral (dg-math §8; k-diffusion's sample_euler_ancestral, η = 1) is DDPM: its step
 * x + (σ_down − σ)·(x − D)/σ + σ_up·z is D + σ_down·ε̂ + σ_up·z, DDIM's with η = 1 (the bench measured
 * identical images). Listed under its A1111 name for users who look for it.
 */
export const sampleEulerAncestral: Sampler = sampleDdpm;

// DPM-Solver++ (Lu et al. 2022) works in λ = −log σ, the VE half-log-SNR
function lambdaOf(sigmaVe: number): number {
  return -Math.log(sigmaVe);
}

// DPM-Solver++ first-order step (= DDIM, η = 0) from x at σ to σ_next with data estimate D:
// x' = (σ_next/σ)·x − expm1(−h)·D, h = λ_next − λ
function dataPredictionStep(x: Tensor, denoised: Tensor, sigma: number, sigmaNext: number): Tensor {
  if (sigmaNext === 0) return denoised;
  const h = lambdaOf(sigmaNext) - lambdaOf(sigma);
  return combinePerItem(x, sigmaNext / sigma, denoised, -Math.expm1(-h));
}

/**
 * The loop of the one-evaluation-a-step samplers: D at each σ (guided), then `advance` from σ to
 * σ_next > 0 with it; the step to 0 returns D, and a ladder that does not descend (t0 at the
 * schedule's floor) leaves x where it is.
 */
async function oneEvaluationSteps(
  denoise: Denoiser,
  x0: Tensor,
  sigmas: number[],
  opts: SamplerOptions,
  advance: (x: Tensor, denoised: Tensor, sigma: number, sigmaNext: number) => Tensor,
): Promise<Tensor> {
  const total = sigmas.length - 1;
  let x = x0;
  for (let i = 0; i < total; i++) {
    throwIfAborted(opts.signal);
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await guidedDenoise(denoise, x, filled(x.shape[0]!, sigma), opts.guidance, i, 1);
    if (sigmaNext === 0) x = denoised;
    else if (sigmaNext < sigma) x = advance(x, denoised, sigma, sigmaNext);
    await opts.onStep?.({ stepIndex: i, totalSteps: total, sigma, x, denoised });
  }
  return x;
}

/**
 * Multistep DPM-Solver++ of order 2 or 3 in VE form (k-diffusion's sample_dpmpp_2m and the
 * deterministic case of sample_dpmpp_3m_sde): one network evaluation a step, earlier steps'
 * data estimates extrapolate D in λ. Guidance enters through D (guidedDenoise), like every sampler.
 */
function multistepSampler(denoise: Denoiser, x0: Tensor, sigmas: number[], opts: SamplerOptions, order: 2 | 3) {
  const history: { denoised: Tensor; h: number }[] = []; // newest first
  return oneEvaluationSteps(denoise, x0, sigmas, opts, (xStart, denoised, sigma, sigmaNext) => {
    const h = lambdaOf(sigmaNext) - lambdaOf(sigma);
    let x = dataPredictionStep(xStart, denoised, sigma, sigmaNext);
    // φ₂(h) = 1 − (1 − e^{−h})/h, φ₃ = φ₂/h − ½ (the exponential integrator's weights of D's λ-derivatives)
    const phi2 = 1 + Math.expm1(-h) / h;
    const [prev, prev2] = history;
    if (order === 3 && prev && prev2) {
      // third order: first and second divided differences of D in λ
      const r0 = prev.h / h;
      const r1 = prev2.h / h;
      const d10 = combinePerItem(denoised, 1 / r0, prev.denoised, -1 / r0);
      const d11 = combinePerItem(prev.denoised, 1 / r1, prev2.denoised, -1 / r1);
      const d1 = combinePerItem(d10, 1 + r0 / (r0 + r1), d11, -r0 / (r0 + r1));
      const d2 = combinePerItem(d10, 1 / (r0 + r1), d11, -1 / (r0 + r1));
      const phi3 = phi2 / h - 0.5;
      x = axpy(-phi3, d2, axpy(phi2, d1, x));
    } else if (prev) {
      // second order: D's λ-slope from the previous step's estimate; 2M uses DPM-Solver++'s
      // midpoint weight (1 − e^{−h})/2, 3M's start the exponential integrator's φ₂
      const r = prev.h / h;
      const d = combinePerItem(denoised, 1 / r, prev.denoised, -1 / r);
      x = axpy(order === 2 ? -Math.expm1(-h) / 2 : phi2, d, x);
    }
    history.unshift({ denoised, h });
    history.length = Math.min(history.length, 2);
    return x;
  });
}

/**
 * DPM-Solver++(2M) SDE (dg-math §8; k-diffusion's sample_dpmpp_2m_sde, midpoint variant, η = 1): with
 * h = λ_next − λ, x ← (σ_next/σ)·e^{−h}·x + (1 − e^{−2h})·D′ + σ_next·√(1 − e^{−2h})·z, where
 * D′ = D + (1/(2r))·(D − D_prev), r = h_prev/h, after the first step. One evaluation a step.
 */
export const sampleDpmpp2mSde: Sampler = (denoise, x0, sigmas, opts) => {
  const eta = 1;
  let prev: { denoised: Tensor; h: number } | undefined;
  return oneEvaluationSteps(denoise, x0, sigmas, opts, (x, denoised, sigma, sigmaNext) => {
    const h = lambdaOf(sigmaNext) - lambdaOf(sigma);
    const dataWeight = -Math.expm1(-(1 + eta) * h); // 1 − e^{−(1+η)h}
    let out = combinePerItem(x, (sigmaNext / sigma) * Math.exp(-eta * h), denoised, dataWeight);
    if (prev) {
      const r = prev.h / h;
      out = axpy(dataWeight * (0.5 / r), combinePerItem(denoised, 1, prev.denoised, -1), out);
    }
    prev = { denoised, h };
    return addNoise(out, sigmaNext * Math.sqrt(-Math.expm1(-2 * eta * h)), opts.rng);
  });
};

/** DPM-Solver++(2M): second-order multistep, one evaluation a step. */
export const sampleDpmpp2m: Sampler = (denoise, x, sigmas, opts) => multistepSampler(denoise, x, sigmas, opts, 2);

/** DPM-Solver++(3M): third-order multistep, one evaluation a step. */
export const sampleDpmpp3m: Sampler = (denoise, x, sigmas, opts) => multistepSampler(denoise, x, sigmas, opts, 3);

/**
 * UniPC (Zhao et al. 2023, the bh2 variant in data prediction; the official code's
 * multistep_uni_pc_bh_update) in VE form, order 2: the predictor UniP-2 is DPM-Solver++(2M)'s step;
 * the corrector UniC then re-solves the same step once D at its end is known, and that D — evaluated
 * at the predicted point — is the next step's D, so the correction costs no network evaluation
 * (one a step, like 2M) and raises the order by one. No correction after the last evaluation.
 * Guidance enters through D (guidedDenoise), like every sampler (dg-math §5).
 */
export const sampleUniPc: Sampler = (denoise, x0, sigmas, opts) => {
  let prev: { denoised: Tensor; lambda: number } | undefined; // D and λ one step back
  let pending: UniStep | undefined;
  return oneEvaluationSteps(denoise, x0, sigmas, opts, (xPredicted, denoised, sigma, sigmaNext) => {
    const x = pending ? uniCorrect(pending, denoised) : xPredicted;
    const lambda = lambdaOf(sigma);
    const h = lambdaOf(sigmaNext) - lambda;
    const firstOrder = dataPredictionStep(x, denoised, sigma, sigmaNext);
    // UniP-2: D's divided difference towards the previous point, r₁ = (λ₋₁ − λ)/h < 0, weight ρ = ½
    const r1 = prev ? (prev.lambda - lambda) / h : 0;
    const d1 = prev ? combinePerItem(prev.denoised, 1 / r1, denoised, -1 / r1) : undefined;
    pending = { startDenoised: denoised, h, firstOrder, slope: d1 && { d1, r1 } };
    prev = { denoised, lambda };
    return d1 ? axpy(-Math.expm1(-h) * 0.5, d1, firstOrder) : firstOrder;
  });
};

/** A UniPC step awaiting its corrector: D at its start, h, the first-order solution x̃, the predictor's D-slope. */
interface UniStep {
  startDenoised: Tensor;
  h: number;
  firstOrder: Tensor;
  slope: { d1: Tensor; r1: number } | undefined;
}

function uniCorrect(step: UniStep, denoisedEnd: Tensor): Tensor {
  const hh = -step.h;
  const bh = Math.expm1(hh);
  // the official recursion's weights: φ₂ = (e^{−h} − 1)/(−h) − 1, φ₃ = φ₂/(−h) − ½
  const phi2 = Math.expm1(hh) / hh - 1;
  const phi3 = phi2 / hh - 0.5;
  const b1 = phi2 / bh;
  const b2 = (2 * phi3) / bh;
  const dEnd = axpy(-1, step.startDenoised, denoisedEnd);
  if (!step.slope) return axpy(-bh * 0.5, dEnd, step.firstOrder);
  const { d1, r1 } = step.slope;
  const rho0 = (b1 - b2) / (1 - r1);
  const rho1 = b1 - rho0;
  const correction = combinePerItem(d1, rho0, dEnd, rho1);
  return axpy(-bh, correction, step.firstOrder);
}

export const SAMPLERS = {
  euler: sampleEuler,
  'euler-a': sampleEulerAncestral,
  heun: sampleHeun,
  ddim: sampleDdim,
  ddpm: sampleDdpm,
  'dpm++2m': sampleDpmpp2m,
  'dpm++3m': sampleDpmpp3m,
  unipc: sampleUniPc,
  'dpm++2m-sde': sampleDpmpp2mSde,
} as const;
export type SamplerName = keyof typeof SAMPLERS;

/**
 * Network evaluations per image of `steps` steps: Heun's correction stage runs on every step but
 * the last (to σ = 0, where it would divide by 0), so 2·steps − 1; the others evaluate once a step.
 */
export function networkEvaluations(sampler: SamplerName, steps: number): number {
  return sampler === 'heun' ? Math.max(1, 2 * steps - 1) : steps;
}
