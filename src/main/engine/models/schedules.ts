/**
 * Forward processes and their coordinates (dg-math §1, §3, §4).
 *
 * Inside the engine every sampler works in one coordinate system: VE, with state
 * `x_ve = x_vp / α` and noise level `σ_ve = σ_vp / α` (dg-math §1, paper Eq. 8).
 * A schedule's job is to say which σ_ve a model time means and back.
 */

/** Linear-VP (DDPM continuous) parameters: β(t) = β0 + t(β1 - β0). */
export interface LvpParams {
  betaMin: number;
  betaMax: number;
}

export const LVP_DEFAULT: LvpParams = { betaMin: 0.1, betaMax: 20 };
/** Smallest LVP time the discriminator is trained at (dg-math §4). */
export const LVP_TAU_MIN = 1e-5;

// dg-math §1: B(τ) = ∫0^τ β = ½τ²(β1-β0) + τβ0
export function lvpIntegratedBeta(tau: number, p: LvpParams = LVP_DEFAULT): number {
  return 0.5 * tau * tau * (p.betaMax - p.betaMin) + tau * p.betaMin;
}

// dg-math §1: α(τ) = exp(-¼τ²(β1-β0) - ½τβ0) = exp(-½B(τ))
export function lvpAlpha(tau: number, p: LvpParams = LVP_DEFAULT): number {
  return Math.exp(-0.5 * lvpIntegratedBeta(tau, p));
}

// dg-math §1: σ_vp(τ) = sqrt(1 - α²)
export function lvpSigma(tau: number, p: LvpParams = LVP_DEFAULT): number {
  return Math.sqrt(-Math.expm1(-lvpIntegratedBeta(tau, p)));
}

// dg-math §1: the inverse of B, τ = (-β0 + sqrt(β0² + 2(β1-β0)·B)) / (β1-β0)
export function lvpTimeFromIntegratedBeta(integratedBeta: number, p: LvpParams = LVP_DEFAULT): number {
  const d = p.betaMax - p.betaMin;
  return (-p.betaMin + Math.sqrt(p.betaMin * p.betaMin + 2 * d * integratedBeta)) / d;
}

// dg-math §1: τ from a VE level σ, using ∫0^τ β = log(1 + σ²)
export function lvpTimeFromSigmaVe(sigmaVe: number, p: LvpParams = LVP_DEFAULT): number {
  return lvpTimeFromIntegratedBeta(Math.log1p(sigmaVe * sigmaVe), p);
}

// dg-math §1: σ_ve(τ) = σ_vp/α = sqrt(e^{B(τ)} - 1)
export function lvpSigmaVe(tau: number, p: LvpParams = LVP_DEFAULT): number {
  return Math.sqrt(Math.expm1(lvpIntegratedBeta(tau, p)));
}

// dg-math §1: a VP state (α, σ_vp) is the VE state with σ_ve = σ_vp / α
export function sigmaVeFromVp(alpha: number, sigmaVp: number): number {
  return sigmaVp / alpha;
}

// dg-math §1: the VP scale of a VE level, α = 1/sqrt(1 + σ_ve²) (since α² + σ_vp² = 1)
export function alphaFromSigmaVe(sigmaVe: number): number {
  return 1 / Math.sqrt(1 + sigmaVe * sigmaVe);
}

// dg-math §1: VP noise level of a VE level, σ_vp = σ_ve·α
export function sigmaVpFromSigmaVe(sigmaVe: number): number {
  return sigmaVe * alphaFromSigmaVe(sigmaVe);
}

// ---- discrete DDPM ----

// dg-math §1: β_j linear from β_1 to β_T
export function ddpmLinearBetas(steps: number, betaStart = 1e-4, betaEnd = 0.02): Float64Array {
  const betas = new Float64Array(steps);
  for (let j = 0; j < steps; j++) betas[j] = betaStart + ((betaEnd - betaStart) * j) / (steps - 1);
  return betas;
}

// dg-math §11: Stable Diffusion's "scaled_linear", β_j = (linspace(√β_1, √β_T, T)_j)²
export function scaledLinearBetas(steps: number, betaStart = 0.00085, betaEnd = 0.012): Float64Array {
  const [a, b] = [Math.sqrt(betaStart), Math.sqrt(betaEnd)];
  const betas = new Float64Array(steps);
  for (let j = 0; j < steps; j++) betas[j] = (a + ((b - a) * j) / (steps - 1)) ** 2;
  return betas;
}

// dg-math §1: ᾱ_i = Π_{j≤i} (1 - β_j)
export function alphaBarsFromBetas(betas: Float64Array): Float64Array {
  const out = new Float64Array(betas.length);
  let prod = 1;
  for (let j = 0; j < betas.length; j++) {
    prod *= 1 - betas[j]!;
    out[j] = prod;
  }
  return out;
}

// dg-math §1: cosine ᾱ(t) = cos²(((t+s)/(1+s))·π/2) / cos²((s/(1+s))·π/2)
export function cvpAlphaBar(t: number, s = 0.008): number {
  const f = (u: number) => Math.cos(((u + s) / (1 + s)) * (Math.PI / 2)) ** 2;
  return f(t) / f(0);
}

// dg-math §1 (iDDPM): β_i = min(1 - ᾱ((i+1)/T) / ᾱ(i/T), 0.999)
export function ddpmCosineBetas(steps: number, s = 0.008): Float64Array {
  const betas = new Float64Array(steps);
  for (let i = 0; i < steps; i++) {
    betas[i] = Math.min(1 - cvpAlphaBar((i + 1) / steps, s) / cvpAlphaBar(i / steps, s), 0.999);
  }
  return betas;
}

// dg-math §1: the cosine time whose ᾱ equals a given ᾱ
export function cvpTimeFromAlphaBar(alphaBar: number, s = 0.008): number {
  const c0 = Math.cos((s / (1 + s)) * (Math.PI / 2));
  const arg = Math.min(1, Math.sqrt(alphaBar) * c0);
  return (1 + s) * (2 / Math.PI) * Math.acos(arg) - s;
}

// dg-math §1: a CVP network evaluated at an LVP time, through the common ᾱ
export function cvpTimeFromLvpTime(tau: number, s = 0.008, p: LvpParams = LVP_DEFAULT): number {
  return cvpTimeFromAlphaBar(lvpAlpha(tau, p) ** 2, s);
}

// ---- VE / EDM ----

// dg-math §1: σ_i = (σmax^(1/ρ) + i/(N-1)·(σmin^(1/ρ) - σmax^(1/ρ)))^ρ, i = 0…N-1
export function karrasSigmas(steps: number, sigmaMin: number, sigmaMax: number, rho = 7): number[] {
  if (steps === 1) return [sigmaMax];
  const a = sigmaMax ** (1 / rho);
  const b = sigmaMin ** (1 / rho);
  return Array.from({ length: steps }, (_, i) => (a + (i / (steps - 1)) * (b - a)) ** rho);
}

// ---- discriminator time sampling ----

// dg-math §4: importance-sampled τ (reference code vpsde.get_diffusion_time), u ~ U(0,1)
export function importanceSampledLvpTime(u: number, p: LvpParams = LVP_DEFAULT, tauMin = LVP_TAU_MIN): number {
  const logMeanCoeff = (tau: number) => {
    const b = lvpIntegratedBeta(tau, p);
    return Math.log(-Math.expm1(-b)) + b; // A(τ) = log(1 - e^{-B}) + B
  };
  const aMin = logMeanCoeff(tauMin);
  const z = logMeanCoeff(1) - aMin;
  return lvpTimeFromIntegratedBeta(Math.log1p(Math.exp(z * u + aMin)), p);
}
