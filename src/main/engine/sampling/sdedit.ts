/**
 * SDEdit (dg-math §3): noise the source up to t0, then run any sampler down to 0.
 */
import type { TranslateParams } from '../../../shared/params.js';
import type { Denoiser } from './denoiser.js';
import type { ModelSchedule, Spacing } from './model-schedule.js';
import { SAMPLERS, type ChurnOptions, type SamplerName, type SamplerOptions } from './samplers.js';
import { axpy, type Tensor } from '../tensor.js';

export interface SdeditParams {
  t0: number;
  steps: number;
  sampler: SamplerName;
  eta?: number | undefined;
  churn?: Partial<ChurnOptions> | undefined;
  spacing?: Spacing | undefined;
  /** the ladder's floor (dg-math §8); undefined: the model's own */
  sigmaMin?: number | undefined;
}

/** The SDEdit settings of a translation's parameters (pixel and latent translations alike). */
export function sdeditParamsOf(p: TranslateParams): SdeditParams {
  return {
    t0: p.t0,
    steps: p.steps,
    sampler: p.sampler,
    eta: p.eta,
    churn: { sChurn: p.churn },
    spacing: p.spacing,
    sigmaMin: p.sigmaMin ?? undefined,
  };
}

/** The σ ladder a translation runs (dg-math §3, its floor §8): the one place its settings pick it. */
export function sdeditLadder(schedule: ModelSchedule, params: SdeditParams): number[] {
  return schedule.sdeditSigmas(params.t0, params.steps, params.spacing, params.sigmaMin);
}

// dg-math §3: x_{t0} = α·x_src + σ·ε in VP is x_src + σ_ve(t0)·ε in VE coordinates
export function sdeditStart(source: Tensor, sigmaVe: number, noise: Tensor): Tensor {
  return axpy(sigmaVe, noise, source);
}

export async function sdedit(
  denoise: Denoiser,
  schedule: ModelSchedule,
  source: Tensor,
  params: SdeditParams,
  opts: Omit<SamplerOptions, 'eta' | 'churn'>,
): Promise<Tensor> {
  const sigmas = sdeditLadder(schedule, params);
  const noise = { data: opts.rng.normal(source.shape), shape: source.shape };
  const start = sdeditStart(source, sigmas[0]!, noise);
  const sampler = SAMPLERS[params.sampler];
  if (!sampler) throw new Error(`unknown sampler "${params.sampler}"; use one of ${Object.keys(SAMPLERS).join(', ')}`);
  return sampler(denoise, start, sigmas, { ...opts, eta: params.eta, churn: params.churn });
}
