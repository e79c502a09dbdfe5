/**
 * bench/dg-pilot: discriminator designs compared where users meet them — SDEdit of N held-out Twemoji with the
 * default sampler at one t0, the same seeds everywhere, plain and with each design at several weights (issue 26:
 * "DG gain at equal faithfulness, roughness, and the paired distance to the true target"):
 *   L2 source = RMS distance to the source (faithfulness); Δ L2 truth = the paired change of the distance to the
 *   true Noto drawing against plain SDEdit (± s.e.; < 0: closer to what Noto drew); SWD = sliced Wasserstein to
 *   128 held-out Noto images (realism; plain SDEdit's seed-noise floor from a second seed set); roughness = mean
 *   |Laplacian| ÷ that of those Noto images; mottle 1× / 4× = roughness where the source is flat, at full resolution
 *   and 4×-pooled (metrics.ts, mottle); s = the run's wall time (DG's cost).
 *
 *   npx tsx bench/dg-pilot.ts [N] [--t0 0.45] [--weights 2,4,8] --design P4=.cache/dg-P4 [--design …]
 *                                  [--model other/manifest.json] [--dg-window 0.2,1]   (the bundled discriminator is always compared, at its recommended w)
 */
import { join } from 'node:path';
import { heldOutEmoji, mean } from './heldout-emoji.js';
import { Command } from 'commander';
import { TranslateParamsSchema } from '../src/shared/params.js';
import { loadDiscriminator, type LoadedDiscriminator } from '../src/main/engine/models/discriminator.js';
import { loadScoreModel } from '../src/main/engine/models/score-model.js';
import { translateBatch } from '../src/main/engine/sampling/translate.js';
import { list, pair } from '../src/main/cli/options.js';
import { pairedDifference } from '../src/main/services/evidence-report.js';

const root = join(import.meta.dirname, '..');
const o = new Command()
  .argument('[n]', 'held-out images', '32')
  .option('--t0 <t>', 'SDEdit start', '0.45')
  .option('--weights <list>', "each design's weights", list('--weights'), [2, 4, 8])
  .option('--design <label=manifest...>', 'a discriminator to compare (repeatable)', (v: string, p: string[]) => [...p, v], [] as string[])
  .option('--model <manifest>', 'score model (default: the bundled)')
  .option('--dg-window <lo,hi>', 'guide only for τ in [lo, hi] (default: the app default)', pair('--dg-window'))
  .parse();
const opts = o.opts<{ t0: string; weights: number[]; design: string[]; model?: string; dgWindow?: number[] }>();
const n = Number(o.args[0] ?? 32);
const t0 = Number(opts.t0);
const models = join(root, 'resources', 'models');
const model = await loadScoreModel(opts.model ?? join(models, 'noto-emoji-unet', 'manifest.json'));
const set = await heldOutEmoji(model, n);

async function run(disc: LoadedDiscriminator | null, w: number, firstSeed = 0) {
  const t = performance.now();
  const out = await translateBatch(
    model,
    set.batch,
    TranslateParamsSchema.parse({ t0, dgWeight: disc ? w : 0, batchSize: 8, ...(opts.dgWindow ? { dgWindow: opts.dgWindow } : {}) }),
    {
      seeds: set.seeds(firstSeed),
      critic: disc?.critic,
    },
  );
  const seconds = (performance.now() - t) / 1000;
  const q = set.measure(out);
  return { ...q, l2Source: mean(q.l2Source), seconds };
}

const plain = await run(null, 0);
const again = await run(null, 0, 100_000);
console.log(
  `dg-pilot: "${model.manifest.name}", N = ${n}, t0 = ${t0}, the default sampler${opts.dgWindow ? `, DG window τ ∈ [${opts.dgWindow.join(', ')}]` : ''} — ${new Date().toISOString()}`,
);
console.log(
  `plain SDEdit: seed-noise floor (a second seed set): SWD ±${Math.abs(again.swd - plain.swd).toFixed(1)}, L2 source ±${Math.abs(again.l2Source - plain.l2Source).toFixed(4)}, roughness ±${Math.abs(again.roughness - plain.roughness).toFixed(3)}, mottle ±${Math.abs(again.mottle[0] - plain.mottle[0]).toFixed(4)} / ±${Math.abs(again.mottle[1] - plain.mottle[1]).toFixed(4)}`,
);
console.log('| design | w | L2 source | Δ L2 truth (± s.e.) | SWD | roughness ÷ Noto | mottle 1× / 4× | s |');
console.log('|---|---|---|---|---|---|---|---|');
const row = (label: string, w: number | string, q: Awaited<ReturnType<typeof run>>) => {
  const d = pairedDifference(plain.l2Truth, q.l2Truth);
  console.log(
    `| ${label} | ${w} | ${q.l2Source.toFixed(4)} | ${d.mean >= 0 ? '+' : ''}${d.mean.toFixed(4)} ± ${d.se.toFixed(4)} | ${q.swd.toFixed(1)} | ${q.roughness.toFixed(3)} | ${q.mottle[0].toFixed(4)} / ${q.mottle[1].toFixed(4)} | ${q.seconds.toFixed(1)} |`,
  );
};
row('plain SDEdit', 0, plain);
const designs: [string, string, number[]][] = [
  ['bundled', join(models, 'noto-emoji-dg', 'manifest.json'), []],
  ...opts.design.map((d): [string, string, number[]] => [d.slice(0, d.indexOf('=')), d.slice(d.indexOf('=') + 1), opts.weights]),
];
for (const [label, manifest, weights] of designs) {
  const disc = await loadDiscriminator(manifest, { dataShape: model.manifest.dataShape, valueRange: model.manifest.valueRange });
  for (const w of weights.length ? weights : [disc.manifest.recommendedWeight ?? 1]) row(label, w, await run(disc, w));
  await disc.dispose();
}
await model.dispose();
