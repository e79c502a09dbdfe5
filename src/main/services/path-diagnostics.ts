/**
 * Path diagnostics (paper Fig. 8): the discriminator's log r along time for real forward
 * paths (target images diffused), unguided sampling paths and guided sampling paths.
 * Guidance should keep sampling paths' log r near the real paths'.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sdeditLadder, sdeditParamsOf } from '../engine/sampling/sdedit.js';
import { TranslateParamsSchema, type TranslateParamsInput } from '../../shared/params.js';
import { loadDiscriminator } from '../engine/models/discriminator.js';
import { criticAtVeState } from '../engine/sampling/guidance.js';
import { readImage, writeFileAtomic } from '../engine/io/image-io.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { Rng } from '../engine/rng.js';
import { lvpTimeFromSigmaVe } from '../engine/models/schedules.js';
import { loadScoreModel } from '../engine/models/score-model.js';
import type { Tensor } from '../engine/tensor.js';
import { translateBatch } from '../engine/sampling/translate.js';
import { linesSpec, renderPng } from './plots.js';
import { expandInputs, imageSpecOf } from './translate-files.js';

export interface PathRow {
  series: string;
  tau: number;
  meanLogRatio: number;
  stdLogRatio: number;
}

export interface PathRequest {
  sources: string[];
  reference: string[];
  modelManifest: string;
  discriminatorManifest: string;
  t0: number;
  weight: number;
  params?: TranslateParamsInput;
  outDir: string;
  executionProvider?: ExecutionProvider | undefined;
  threads?: number | undefined;
}

const stats = (v: Float64Array) => {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean: m, std: Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length) };
};

export async function diagnosePaths(req: PathRequest): Promise<{ rows: PathRow[]; csvPath: string; plotPath: string }> {
  const session = { executionProvider: req.executionProvider, threads: req.threads };
  const model = await loadScoreModel(req.modelManifest, session);
  const disc = await loadDiscriminator(
    req.discriminatorManifest,
    { dataShape: model.manifest.dataShape, valueRange: model.manifest.valueRange },
    session,
  );
  try {
    const spec = imageSpecOf(model);
    const size = spec.channels * spec.height * spec.width;
    const stack = async (files: string[]): Promise<Tensor> => {
      const imgs = await Promise.all(files.map((f) => readImage(f, spec)));
      const data = new Float32Array(imgs.length * size);
      imgs.forEach((x, i) => data.set(x, i * size));
      return { data, shape: [imgs.length, spec.channels, spec.height, spec.width] };
    };
    const sources = await stack(await expandInputs(req.sources));
    const reference = await stack(await expandInputs(req.reference));
    const params = TranslateParamsSchema.parse({ ...req.params, t0: req.t0 });
    const sigmas = sdeditLadder(model.schedule, sdeditParamsOf(params)).filter((s) => s > 0);
    const rows: PathRow[] = [];
    const record = async (series: string, x: Tensor, sigma: number) => {
      const { value } = await criticAtVeState(disc.critic, x, new Float64Array(x.shape[0]!).fill(sigma));
      const s = stats(value);
      rows.push({ series, tau: lvpTimeFromSigmaVe(sigma), meanLogRatio: s.mean, stdLogRatio: s.std });
    };
    // real forward paths: x_ve = x0 + σ·ε at the sampler's levels
    const rng = new Rng(params.seed);
    for (const sigma of sigmas) {
      const x = { data: reference.data.map((v) => v + sigma * rng.normal()), shape: reference.shape };
      await record('real forward path (target)', x, sigma);
    }
    // sampling paths from the sources, unguided and guided, with the same seeds
    const seeds = Array.from({ length: sources.shape[0]! }, (_, i) => (params.seed + i) % 2 ** 32);
    for (const [series, w] of [
      ['unguided sampling (w = 0)', 0],
      [`guided sampling (w = ${req.weight})`, req.weight],
    ] as const) {
      const steps: { x: Tensor; sigma: number }[] = [];
      await translateBatch(
        model,
        sources,
        { ...params, dgWeight: w, dgWeight2: w },
        {
          seeds,
          critic: disc.critic,
          onStep: (s) => {
            const next = sigmas[s.stepIndex + 1];
            if (next) steps.push({ x: { data: Float32Array.from(s.x.data), shape: [...s.x.shape] }, sigma: next });
          },
        },
      );
      for (const s of steps) await record(series, s.x, s.sigma);
    }
    await mkdir(req.outDir, { recursive: true });
    const csvPath = join(req.outDir, 'paths.csv');
    await writeFileAtomic(
      csvPath,
      ['series,tau,mean_log_ratio,std_log_ratio', ...rows.map((r) => `"${r.series}",${r.tau},${r.meanLogRatio},${r.stdLogRatio}`)].join(
        '\n',
      ) + '\n',
    );
    const plotPath = join(req.outDir, 'paths.png');
    await writeFileAtomic(
      plotPath,
      await renderPng(
        linesSpec(
          rows.map((r) => ({ x: r.tau, y: r.meanLogRatio, series: r.series })),
          { x: 'LVP time τ', y: 'mean log r = log d/(1-d)' },
          `log r along time (${disc.manifest.name})`,
        ),
      ),
    );
    return { rows, csvPath, plotPath };
  } finally {
    await disc.dispose();
    await model.dispose();
  }
}
