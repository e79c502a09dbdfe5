/**
 * What a network predicts, turned into a score or into the canonical VE denoiser
 * (dg-math §2). Every coefficient is per batch item, so items may sit at different
 * noise levels (adaptive churn).
 *
 * Canonical form: D(x_ve; σ_ve) ≈ E[x0 | x], with s_ve = (D - x_ve)/σ_ve².
 */
import { combinePerItem, type Tensor } from '../tensor.js';

export type Prediction = 'eps' | 'x0' | 'v' | 'edm-denoiser' | 'score';

type PerItem = ArrayLike<number>;

const map = (c: PerItem, f: (v: number, i: number) => number) => Float64Array.from(c as ArrayLike<number>, f);

// dg-math §2: ε-prediction, s = -ε̂ / σ_vp
export function scoreFromEps(eps: Tensor, sigmaVp: PerItem): Tensor {
  return combinePerItem(
    eps,
    map(sigmaVp, (s) => -1 / s),
    eps,
    map(sigmaVp, () => 0),
  );
}

// dg-math §2: x0-prediction (VP), s = (α·x̂0 - x) / σ_vp²
export function scoreFromX0(x0: Tensor, xVp: Tensor, alpha: PerItem, sigmaVp: PerItem): Tensor {
  return combinePerItem(
    x0,
    map(alpha, (a, i) => a / sigmaVp[i]! ** 2),
    xVp,
    map(sigmaVp, (s) => -1 / (s * s)),
  );
}

// dg-math §2: v-prediction, x̂0 = α·x - σ·v
export function x0FromV(v: Tensor, xVp: Tensor, alpha: PerItem, sigmaVp: PerItem): Tensor {
  return combinePerItem(
    xVp,
    alpha,
    v,
    map(sigmaVp, (s) => -s),
  );
}

// dg-math §2: v-prediction, ε̂ = σ·x + α·v
export function epsFromV(v: Tensor, xVp: Tensor, alpha: PerItem, sigmaVp: PerItem): Tensor {
  return combinePerItem(xVp, sigmaVp, v, alpha);
}

// dg-math §2: EDM denoiser (VE), s = (D - x) / σ²
export function scoreFromEdmDenoiser(denoised: Tensor, xVe: Tensor, sigmaVe: PerItem): Tensor {
  return combinePerItem(
    denoised,
    map(sigmaVe, (s) => 1 / (s * s)),
    xVe,
    map(sigmaVe, (s) => -1 / (s * s)),
  );
}

// dg-math §2 + §1: ε̂ in VP is the same ε in VE, so x̂0 = x_ve - σ_ve·ε̂
export function denoiserFromEps(eps: Tensor, xVe: Tensor, sigmaVe: PerItem): Tensor {
  return combinePerItem(
    xVe,
    map(sigmaVe, () => 1),
    eps,
    map(sigmaVe, (s) => -s),
  );
}

// dg-math §2: a VP score s_vp gives x̂0 = (x_vp + σ_vp²·s_vp)/α
export function denoiserFromVpScore(score: Tensor, xVp: Tensor, alpha: PerItem, sigmaVp: PerItem): Tensor {
  return combinePerItem(
    xVp,
    map(alpha, (a) => 1 / a),
    score,
    map(sigmaVp, (s, i) => (s * s) / alpha[i]!),
  );
}

// dg-math §2: the inverse of the canonical form, s_ve = (D - x_ve)/σ_ve²
export const scoreFromDenoiser = scoreFromEdmDenoiser;

// dg-math §2 (EDM preconditioning, Karras et al. 2022 Table 1): D = c_skip·x + c_out·F(c_in·x; c_noise)
export function edmPreconditioning(sigmaVe: number, sigmaData: number) {
  const s2 = sigmaVe * sigmaVe;
  const d2 = sigmaData * sigmaData;
  return {
    cSkip: d2 / (s2 + d2),
    cOut: (sigmaVe * sigmaData) / Math.sqrt(s2 + d2),
    cIn: 1 / Math.sqrt(s2 + d2),
    cNoise: Math.log(sigmaVe) / 4,
  };
}
