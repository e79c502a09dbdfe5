import { describe, expect, it } from 'vitest';
import {
  denoiserFromEps,
  denoiserFromVpScore,
  edmPreconditioning,
  epsFromV,
  scoreFromDenoiser,
  scoreFromEps,
  scoreFromX0,
  x0FromV,
} from '../../src/main/engine/models/parameterizations.js';
import { Rng } from '../../src/main/engine/rng.js';
import { alphaFromSigmaVe } from '../../src/main/engine/models/schedules.js';
import type { Tensor } from '../../src/main/engine/tensor.js';

const rng = new Rng(7);
const randn = (shape: number[]): Tensor => ({ data: rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b))), shape });
const sigmaVe = Float64Array.from([0.05, 0.7, 3, 40]);
const alpha = sigmaVe.map(alphaFromSigmaVe);
const sigmaVp = sigmaVe.map((s, i) => s * alpha[i]!);
const close = (a: Tensor, b: Tensor, tol: number) =>
  a.data.forEach((v, i) => expect(Math.abs(v - b.data[i]!)).toBeLessThan(tol * (1 + Math.abs(b.data[i]!))));
const perItem = (t: Tensor, c: ArrayLike<number>): Tensor => {
  const per = t.data.length / t.shape[0]!;
  return { data: t.data.map((v, i) => v * c[Math.floor(i / per)]!), shape: t.shape };
};

describe('parameterizations (dg-math §2)', () => {
  const x0 = randn([4, 3]);
  const eps = randn([4, 3]);
  const xVe: Tensor = { data: x0.data.map((v, i) => v + sigmaVe[Math.floor(i / 3)]! * eps.data[i]!), shape: [4, 3] };
  const xVp = perItem(xVe, alpha);

  it('ε-prediction: the VE denoiser x - σ_ve·ε recovers x0 and its score is α·(-ε/σ_vp)', () => {
    const d = denoiserFromEps(eps, xVe, sigmaVe);
    close(d, x0, 1e-5);
    close(scoreFromDenoiser(d, xVe, sigmaVe), perItem(scoreFromEps(eps, sigmaVp), alpha), 1e-4);
  });
  it('x0-prediction: s_vp = (α·x0 - x)/σ² equals -ε/σ_vp for the true x0', () => {
    close(scoreFromX0(x0, xVp, alpha, sigmaVp), scoreFromEps(eps, sigmaVp), 1e-3);
  });
  it('v-prediction: x̂0 = αx - σv and ε̂ = σx + αv invert v = αε - σx0', () => {
    const v: Tensor = {
      data: eps.data.map((e, i) => alpha[Math.floor(i / 3)]! * e - sigmaVp[Math.floor(i / 3)]! * x0.data[i]!),
      shape: [4, 3],
    };
    close(x0FromV(v, xVp, alpha, sigmaVp), x0, 1e-5);
    close(epsFromV(v, xVp, alpha, sigmaVp), eps, 1e-5);
  });
  it('a VP score gives x̂0 = (x_vp + σ²s)/α', () => {
    close(denoiserFromVpScore(scoreFromEps(eps, sigmaVp), xVp, alpha, sigmaVp), x0, 1e-4);
  });
  it('EDM preconditioning: c_skip → 1 as σ → 0, c_out → σ_data as σ → ∞, c_out² = σ²·c_skip', () => {
    const small = edmPreconditioning(1e-4, 0.5);
    expect(small.cSkip).toBeCloseTo(1, 6);
    const big = edmPreconditioning(1e4, 0.5);
    expect(big.cOut).toBeCloseTo(0.5, 4);
    const p = edmPreconditioning(2, 0.5);
    expect(p.cIn).toBeCloseTo(1 / Math.sqrt(4.25), 12);
    expect(p.cNoise).toBeCloseTo(Math.log(2) / 4, 12);
    expect(p.cOut ** 2).toBeCloseTo(4 * p.cSkip, 12);
  });
});
