/**
 * bench/sampler-nfe: quality per network evaluation for every sampler, with and without DG, on the
 * Gaussian-mixture toy of dg-math §7 (the model is the exact score of the wrong mixture q; DG uses
 * the exact log(p/q)). SDEdit from t0 = 0.5 of sources drawn from a third mixture, N items:
 *   realism      = sliced Wasserstein distance (64 directions) to N fresh samples of the target
 *                  (p with DG, q without), ×1000
 *   faithfulness = mean L2 distance to the source
 *   solver error = mean |x − x_ref| to DDIM with 1000 steps from the same noise (ODE samplers)
 * A setting "matches DDIM 50" when its solver error is no larger than DDIM 50's: the same ODE solution
 * at least as closely, a deterministic test (the seed-noise floor of the realism and faithfulness
 * columns — their spread over 5 seeds of DDIM 50, printed above each table — is far coarser).
 *
 *   npx tsx bench/sampler-nfe.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SAMPLER_LABELS, TranslateParamsSchema, type TranslateParams } from '../src/shared/params.js';
import { exactLogRatioCritic, sampleMixture, writeToyScoreModel, type GaussianMixture } from '../src/main/engine/models/toy-mixture.js';
import { loadScoreModel, type ScoreModel } from '../src/main/engine/models/score-model.js';
import { networkEvaluations, type SamplerName } from '../src/main/engine/sampling/samplers.js';
import type { Spacing } from '../src/main/engine/sampling/model-schedule.js';
import { translateBatch } from '../src/main/engine/sampling/translate.js';
import { slicedWasserstein } from '../src/main/engine/eval/metrics.js';
import { Rng } from '../src/main/engine/rng.js';
import { P, Q } from '../test/helpers/toy.js';
import type { Tensor } from '../src/main/engine/tensor.js';

/** the source domain: the same places, shifted and rounder */
const SOURCE: GaussianMixture = {
  weights: [0.5, 0.5],
  means: [
    [-1, 1],
    [1, -1],
  ],
  variances: [0.3, 0.3],
};

const rows = (t: Tensor) => Array.from({ length: t.shape[0]! }, (_, i) => t.data.slice(2 * i, 2 * i + 2));

export async function samplerNfe({ n = 4000, t0 = 0.5 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'nfe-bench-'));
  try {
    const model: ScoreModel = await loadScoreModel(await writeToyScoreModel(join(dir, 'q'), Q, { kind: 'lvp-eps' }));
    const critic = exactLogRatioCritic(P, Q);
    const source = sampleMixture(SOURCE, n, new Rng(1));
    const seeds = (s: number) => Array.from({ length: n }, (_, i) => s * n + i);
    const run = (sampler: SamplerName, steps: number, dg: boolean, seed = 0, spacing: Spacing = 'karras') => {
      const params: TranslateParams = TranslateParamsSchema.parse({
        t0,
        steps,
        sampler,
        dgWeight: dg ? 1 : 0,
        dgWindow: [0, 1],
        spacing,
      });
      return translateBatch(model, source, params, { seeds: seeds(seed), critic: dg ? critic : undefined });
    };
    const metrics = (out: Tensor, dg: boolean, ref: Tensor | null) => {
      const target = sampleMixture(dg ? P : Q, n, new Rng(99));
      const realism = 1000 * slicedWasserstein(rows(out), rows(target), 64, new Rng(7));
      let l2 = 0;
      let err = 0;
      for (let i = 0; i < n; i++) {
        l2 += Math.hypot(out.data[2 * i]! - source.data[2 * i]!, out.data[2 * i + 1]! - source.data[2 * i + 1]!);
        if (ref) err += Math.hypot(out.data[2 * i]! - ref.data[2 * i]!, out.data[2 * i + 1]! - ref.data[2 * i + 1]!);
      }
      return { realism, l2: l2 / n, err: ref ? err / n : NaN };
    };
    const samplers: [SamplerName, Spacing, number[]][] = [
      ['ddim', 'karras', [5, 10, 20, 50]],
      ['heun', 'karras', [3, 5, 10, 15, 25]],
      ['dpm++2m', 'karras', [5, 8, 10, 15, 20]],
      ['dpm++2m', 'lambda', [5, 8, 10, 15, 20]],
      ['dpm++3m', 'karras', [5, 8, 10, 15, 20]],
      ['dpm++3m', 'lambda', [5, 8, 10, 15, 20]],
      ['ddpm', 'karras', [10, 50]],
    ];
    const summary: { dg: boolean; sampler: SamplerName; spacing: Spacing; steps: number; nfe: number; matches: boolean }[] = [];
    for (const dg of [false, true]) {
      const ref = await run('ddim', 1000, dg);
      const base = [0, 1, 2, 3, 4].map(async (s) => metrics(await run('ddim', 50, dg, s), dg, null));
      const floors = await Promise.all(base);
      const spread = (f: (m: { realism: number; l2: number }) => number) => Math.max(...floors.map(f)) - Math.min(...floors.map(f));
      const floor = { realism: spread((m) => m.realism), l2: spread((m) => m.l2) };
      const ddim50 = floors[0]!;
      const ddim50Error = metrics(await run('ddim', 50, dg), dg, ref).err;
      console.log(
        `\n### ${dg ? 'with DG (w = 1, exact ratio): target p' : 'without DG: target q'} — DDIM 50: realism ${ddim50.realism.toFixed(1)}, L2 ${ddim50.l2.toFixed(4)}; ` +
          `seed-noise floor (5 seeds): realism ±${floor.realism.toFixed(1)}, L2 ±${floor.l2.toFixed(4)}`,
      );
      console.log(
        '| sampler | spacing | steps | NFE | realism (SWD×1000) | faithfulness (L2) | solver error vs DDIM 1000 | matches DDIM 50 |',
      );
      console.log('|---|---|---|---|---|---|---|---|');
      for (const [sampler, spacing, stepsList] of samplers) {
        for (const steps of stepsList) {
          const m = metrics(await run(sampler, steps, dg, 0, spacing), dg, sampler === 'ddpm' ? null : ref);
          const nfe = networkEvaluations(sampler, steps);
          const matches = m.err <= ddim50Error;
          summary.push({ dg, sampler, spacing, steps, nfe, matches });
          console.log(
            `| ${SAMPLER_LABELS[sampler]} | ${spacing} | ${steps} | ${nfe} | ${m.realism.toFixed(1)} | ${m.l2.toFixed(4)} | ${Number.isNaN(m.err) ? '—' : m.err.toFixed(4)} | ${sampler === 'ddpm' ? '—' : matches ? 'yes' : 'no'} |`,
          );
        }
      }
    }
    const cheapest = (dg: boolean) =>
      summary.filter((r) => r.dg === dg && r.matches && r.sampler !== 'ddpm').sort((a, b) => a.nfe - b.nfe)[0];
    for (const dg of [false, true]) {
      const c = cheapest(dg);
      console.log(
        `cheapest setting that matches DDIM 50 ${dg ? 'with' : 'without'} DG: ${c ? `${SAMPLER_LABELS[c.sampler]}, ${c.spacing} spacing, ${c.steps} steps (${c.nfe} NFE)` : 'none'}`,
      );
    }
    await model.dispose();
    return summary;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`sampler-nfe: 2-D mixture toy (dg-math §7), SDEdit from t0 = 0.5, N = 4000 — ${new Date().toISOString()}`);
  await samplerNfe();
}
