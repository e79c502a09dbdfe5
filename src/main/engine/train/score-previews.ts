/**
 * What a score model in training looks like while it trains: held-out items noised and denoised by the EMA
 * weights, and source images translated SDEdit-style (the Train tab's preview grid, preview.png).
 */
import { denoiserFromEps } from '../models/parameterizations.js';
import { BatchRng, Rng } from '../rng.js';
import { canonicalDenoiser } from '../sampling/denoiser.js';
import { modelSchedule } from '../sampling/model-schedule.js';
import { sdedit, sdeditStart } from '../sampling/sdedit.js';
import { tensor } from '../tensor.js';
import { ALPHA_BARS, DDPM_STEPS, diffuseDdpm } from './score-trainer.js';

/** The EMA model's ε prediction on a batch at integer DDPM steps, and one item's shape (a ScoreTrainer). */
export interface PreviewModel {
  readonly itemShape: number[];
  predict(x: Float32Array, t: number[]): Promise<Float32Array>;
}

/**
 * The EMA model at work on a few held-out items: per row the clean item, then for each time
 * fraction the noised item and the model's x̂0 = (x_i − sqrt(1−ᾱ_i)·ε̂)/sqrt(ᾱ_i) (dg-math §2).
 * Returns the tiles row-major as [C, H, W] items, `2·times.length + 1` per row.
 */
export async function denoisingPreview(model: PreviewModel, items: Float32Array[], times: number[], seed = 4242): Promise<Float32Array[]> {
  const rng = new Rng(seed);
  const n = model.itemShape.reduce((a, b) => a * b, 1);
  const tiles: Float32Array[][] = items.map((x0) => [x0]);
  for (const time of times) {
    const i = Math.round(time * (DDPM_STEPS - 1));
    const ab = ALPHA_BARS[i]!;
    const eps = rng.fillNormal(new Float32Array(items.length * n));
    const x = new Float32Array(items.length * n);
    items.forEach((x0, b) => diffuseDdpm(x0, eps.subarray(b * n, (b + 1) * n), i, x.subarray(b * n, (b + 1) * n)));
    const pred = await model.predict(x, Array(items.length).fill(i));
    // dg-math §1–2: the VP state is the VE state x_ve = x/sqrt(ᾱ) at σ_ve = sqrt((1−ᾱ)/ᾱ), and x̂0 = x_ve − σ_ve·ε̂
    const shape = [items.length, ...model.itemShape];
    const xVe = tensor(
      Float32Array.from(x, (v) => v / Math.sqrt(ab)),
      shape,
    );
    const x0hat = denoiserFromEps(tensor(pred, shape), xVe, new Float64Array(items.length).fill(Math.sqrt((1 - ab) / ab))).data;
    const clip = (v: number) => Math.max(-1, Math.min(1, v));
    items.forEach((_, b) =>
      tiles[b]!.push(Float32Array.from(x.subarray(b * n, (b + 1) * n), clip), Float32Array.from(x0hat.subarray(b * n, (b + 1) * n), clip)),
    );
  }
  return tiles.flat();
}

/**
 * SDEdit translations of source images by the EMA model (dg-math §3, DDIM, `steps` steps), one per
 * t0 in `times`: for each source [source, its noised start at t0, the translation, …] — what a
 * user will get from this model, previewed while it trains.
 */
export async function sdeditPreview(
  model: PreviewModel,
  sources: Float32Array[],
  times: number[],
  steps = 10,
  seed = 4243,
): Promise<Float32Array[]> {
  const schedule = modelSchedule({ kind: 'ddpm-linear', steps: DDPM_STEPS, betaStart: 1e-4, betaEnd: 0.02 });
  const denoise = canonicalDenoiser(
    (x, time) =>
      model
        .predict(
          x.data,
          Array.from(time, (v) => Math.round(v)),
        )
        .then((d) => tensor(d, x.shape)),
    {
      name: 'the model in training',
      prediction: 'eps',
      schedule,
      timeInput: { kind: 'step', scale: 1 },
      preconditioning: { kind: 'none' },
    },
  );
  const shape = [sources.length, ...model.itemShape];
  const source = tensor(Float32Array.from(sources.flatMap((x) => Array.from(x))), shape);
  const n = model.itemShape.reduce((a, b) => a * b, 1);
  const clip = (v: number) => Math.max(-1, Math.min(1, v));
  const tiles: Float32Array[][] = sources.map((x) => [x]);
  for (const t0 of times) {
    const rng = BatchRng.consecutive(seed, sources.length);
    const sigma = schedule.sdeditSigmas(t0, steps)[0]!;
    // the noised start as the model sees it (VP: x/sqrt(1+σ²)), drawn from the same noise the run uses
    const start = sdeditStart(source, sigma, { data: BatchRng.consecutive(seed, sources.length).normal(shape), shape });
    const out = await sdedit(denoise, schedule, source, { t0, steps, sampler: 'ddim' }, { rng });
    sources.forEach((_, b) =>
      tiles[b]!.push(
        Float32Array.from(start.data.subarray(b * n, (b + 1) * n), (v) => clip(v / Math.sqrt(1 + sigma * sigma))),
        Float32Array.from(out.data.subarray(b * n, (b + 1) * n), clip),
      ),
    );
  }
  return tiles.flat();
}
