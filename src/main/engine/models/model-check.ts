/**
 * "Never ship a model that produces noise": a trained score model must denoise held-out
 * data better than the best per-pixel linear denoiser fitted to that same data.
 *
 * In VE coordinates x = x0 + σ·ε (dg-math §1) the diagonal-Gaussian MMSE estimate is
 * x̂0 = μ + v/(v + σ²)·(x − μ) per pixel (μ, v: the data's per-pixel mean and variance),
 * the optimal denoiser for a Gaussian prior and the strongest baseline that knows no
 * structure. A network that has learned the data beats it at every noise level; one that
 * outputs noise, or returns its input, does not.
 */
import type { Denoiser } from '../sampling/denoiser.js';
import type { ScoreModel } from './score-model.js';
import { Rng } from '../rng.js';

export interface DenoisingLevel {
  sigma: number;
  /** mean squared error of the model's x̂0 per pixel */
  modelMse: number;
  /** the same for the per-pixel linear MMSE baseline */
  baselineMse: number;
  /** modelMse / baselineMse: below 1 means the model knows more than the baseline */
  ratio: number;
}

/** Per-pixel mean and variance of a set of images (the baseline's Gaussian prior). */
export function pixelMoments(images: Float32Array[]): { mean: Float64Array; variance: Float64Array } {
  const size = images[0]!.length;
  const mean = new Float64Array(size);
  const variance = new Float64Array(size);
  for (const im of images) for (let i = 0; i < size; i++) mean[i]! += im[i]! / images.length;
  for (const im of images) for (let i = 0; i < size; i++) variance[i]! += (im[i]! - mean[i]!) ** 2 / images.length;
  return { mean, variance };
}

/** dg-math §1 (VE): the diagonal-Gaussian posterior mean μ + v/(v + σ²)(x − μ). */
export function linearMmseDenoise(x: Float32Array, sigma: number, m: { mean: Float64Array; variance: Float64Array }): Float32Array {
  return Float32Array.from(x, (v, i) => m.mean[i]! + (m.variance[i]! / (m.variance[i]! + sigma * sigma)) * (v - m.mean[i]!));
}

/**
 * Noise every image at each σ (seeded), denoise with the model and with the baseline, and
 * compare their mean squared errors against the clean images.
 */
export async function denoisingCheck(
  denoise: Denoiser,
  images: Float32Array[],
  shape: number[],
  sigmas: number[],
  opts: { seed?: number; batchSize?: number } = {},
): Promise<DenoisingLevel[]> {
  if (images.length < 2) throw new Error('the denoising check needs at least two images');
  const moments = pixelMoments(images);
  const size = images[0]!.length;
  const batch = opts.batchSize ?? 8;
  const out: DenoisingLevel[] = [];
  for (const [k, sigma] of sigmas.entries()) {
    const rng = new Rng((opts.seed ?? 0) + k);
    let modelSe = 0;
    let baseSe = 0;
    for (let s = 0; s < images.length; s += batch) {
      const part = images.slice(s, s + batch);
      const noisy = new Float32Array(part.length * size);
      part.forEach((im, b) => {
        for (let i = 0; i < size; i++) noisy[b * size + i] = im[i]! + sigma * rng.normal();
      });
      const x0 = await denoise({ data: noisy, shape: [part.length, ...shape] }, new Float64Array(part.length).fill(sigma));
      part.forEach((im, b) => {
        const base = linearMmseDenoise(noisy.subarray(b * size, (b + 1) * size), sigma, moments);
        for (let i = 0; i < size; i++) {
          modelSe += (x0.data[b * size + i]! - im[i]!) ** 2;
          baseSe += (base[i]! - im[i]!) ** 2;
        }
      });
    }
    const n = images.length * size;
    out.push({ sigma, modelMse: modelSe / n, baselineMse: baseSe / n, ratio: modelSe / baseSe });
  }
  return out;
}

/** The check a model must pass to ship: SDEdit start times (at larger t0 every denoiser nears the data mean) and the bound. */
export const NEVER_SHIP_NOISE = { t0s: [0.2, 0.35, 0.5], maxRatio: 0.9 } as const;

/** denoisingCheck of a loaded score model at SDEdit start times t0 (σ from the model's own schedule). */
export async function scoreModelCheck(
  model: Pick<ScoreModel, 'schedule' | 'denoiser' | 'manifest'>,
  images: Float32Array[],
  t0s: readonly number[],
): Promise<DenoisingLevel[]> {
  const sigmas = t0s.map((t) => model.schedule.sigmaAt(t));
  return denoisingCheck(model.denoiser(), images, model.manifest.dataShape, sigmas);
}
