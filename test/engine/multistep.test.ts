/**
 * The samplers against the exact probability-flow ODE of a Gaussian (dg-math §1, §5): for data
 * N(μ, s²) the VE denoiser is D(x; σ) = μ + s²/(s²+σ²)·(x − μ) and the ODE carries x(σ₀) to
 * x(σ) = μ + (x(σ₀) − μ)·sqrt(s² + σ²)/sqrt(s² + σ₀²). A solver of order p has a global error ∝ h^p:
 * doubling the steps divides it by ~2^p. Bound: 0.7·2^p (the ratio approaches 2^p as h → 0; 30 %
 * covers the pre-asymptotic range at these step counts). The ladders stop at σ = 0.02, not 0: the
 * step to 0 returns D, first order in every solver, which would put a floor under the errors.
 */
import { describe, expect, it } from 'vitest';
import type { Denoiser } from '../../src/main/engine/sampling/denoiser.js';
import { BatchRng } from '../../src/main/engine/rng.js';
import { SAMPLERS, type SamplerName } from '../../src/main/engine/sampling/samplers.js';

const MU = 0.3;
const S = 0.5;
const gaussianDenoiser: Denoiser = async (x, sigma) => {
  const per = x.data.length / sigma.length;
  return { data: x.data.map((v, i) => MU + ((S * S) / (S * S + sigma[Math.floor(i / per)]! ** 2)) * (v - MU)), shape: x.shape };
};
const SIGMA_END = 0.02;
const exactEnd = (x: number, sigma0: number) => MU + ((x - MU) * Math.sqrt(S * S + SIGMA_END ** 2)) / Math.sqrt(S * S + sigma0 * sigma0);

/** n steps log-uniform in σ from 10 down to SIGMA_END (not 0: the step to 0 is first order in every solver) */
const ladder = (n: number) => Array.from({ length: n + 1 }, (_, i) => 10 * (SIGMA_END / 10) ** (i / n));

async function endError(sampler: SamplerName, steps: number): Promise<number> {
  const x0 = Float32Array.from([-12, -3, 0, 4, 15]);
  // float64 would be cleaner; float32 rounding (~1e-7 · 15) stays far below the errors measured here
  const out = await SAMPLERS[sampler](gaussianDenoiser, { data: x0, shape: [5, 1] }, ladder(steps), { rng: BatchRng.consecutive(0, 5) });
  return Math.max(...Array.from(out.data, (v, i) => Math.abs(v - exactEnd(x0[i]!, 10))));
}

describe('ODE samplers converge to the exact Gaussian flow at their order', () => {
  const cases: [SamplerName, number, number][] = [
    ['euler', 1, 16],
    ['ddim', 1, 16],
    ['heun', 2, 8],
    ['dpm++2m', 2, 12],
    // 3M starts with a first- and a second-order step (it has no history yet): their local errors
    // O(h²) and O(h³) make it second order overall (measured ratios 5.5, 4.5, 4.2 → 4), but smaller
    ['dpm++3m', 2, 12],
    // UniPC: the corrector raises 2M's predictor to third order (measured ratios 7.2, 7.9 → 8)
    ['unipc', 3, 12],
  ];
  it.each(cases)('%s: order %i (error falls ≥ 0.7·2^p per doubling of steps)', async (sampler, order, n) => {
    const e1 = await endError(sampler, n);
    const e2 = await endError(sampler, 2 * n);
    const e3 = await endError(sampler, 4 * n);
    expect(e2).toBeLessThan(e1);
    expect(e1 / e2).toBeGreaterThan(0.7 * 2 ** order);
    expect(e2 / e3).toBeGreaterThan(0.7 * 2 ** order);
  });

  it('DPM-Solver++(2M) at 10 steps is closer to the exact flow than DDIM at 50; 3M closer than 2M', async () => {
    expect(await endError('dpm++2m', 10)).toBeLessThan(await endError('ddim', 50));
    for (const n of [12, 24, 48]) expect(await endError('dpm++3m', n)).toBeLessThan(await endError('dpm++2m', n));
  });
});
