/**
 * bench/sigma-floor: where a model's sampling ladder should end (dg-math §8, "the ladder's floor") — the last
 * level before the final step to 0, measured on held-out Twemoji → Noto. For each t0 and each floor σ (the
 * first, "schedule", is the schedule's smallest level: the ladder as it was before floors), SDEdit of N
 * held-out Twemoji with the default sampler and steps, the same seeds for every floor, plain and with DG at the
 * discriminator's recommended weight (or --weight):
 *   L2 source, L2 truth, SWD, roughness ÷ Noto   as in bench/sampler-sde-emoji (bench/heldout-emoji.ts)
 * The seed-noise floor: the spread of L2 source and SWD over the schedule floor's runs with 3 other seeds.
 * What a model should recommend (its manifest's recommendedSigmaMin): the floor with the lowest roughness whose
 * SWD and L2 source stay within that spread of the schedule floor's.
 *
 *   npx tsx bench/sigma-floor.ts [N] [--t0 0.3,0.45,0.55] [--floors 0.02,0.03,0.04,0.05,0.06] [--weight w]
 *                                [--plain-only | --dg-only] [--model m/manifest.json] [--discriminator d/manifest.json]
 */
import { join } from 'node:path';
import { heldOutEmoji, mean } from './heldout-emoji.js';
import { TranslateParamsSchema } from '../src/shared/params.js';
import { loadDiscriminator } from '../src/main/engine/models/discriminator.js';
import { loadScoreModel } from '../src/main/engine/models/score-model.js';
import { translateBatch } from '../src/main/engine/sampling/translate.js';

const root = join(import.meta.dirname, '..');
const option = (name: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const list = (name: string, fallback: string) => (option(name) ?? fallback).split(',').map(Number);
const n = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 64);
const t0s = list('--t0', '0.3,0.45,0.55');
const floors = list('--floors', '0.02,0.03,0.04,0.05,0.06');
const halves = process.argv.includes('--dg-only') ? [true] : process.argv.includes('--plain-only') ? [false] : [false, true];
const models = join(root, 'resources', 'models');
const model = await loadScoreModel(option('--model') ?? join(models, 'noto-emoji-unet', 'manifest.json'));
const disc = await loadDiscriminator(option('--discriminator') ?? join(models, 'noto-emoji-dg', 'manifest.json'), {
  dataShape: model.manifest.dataShape,
  valueRange: model.manifest.valueRange,
});
const weight = Number(option('--weight') ?? disc.manifest.recommendedWeight ?? 1);
const set = await heldOutEmoji(model, n);
const smallest = model.schedule.sigmaMin;
const defaults = TranslateParamsSchema.parse({});

async function run(t0: number, sigmaMin: number, dg: boolean, firstSeed = 0) {
  const params = TranslateParamsSchema.parse({ t0, sigmaMin, dgWeight: dg ? weight : 0, batchSize: 8 });
  const out = await translateBatch(model, set.batch, params, { seeds: set.seeds(firstSeed), critic: dg ? disc.critic : undefined });
  const q = set.measure(out);
  return { ...q, l2Source: mean(q.l2Source), l2Truth: mean(q.l2Truth) };
}

console.log(
  `sigma-floor: "${model.manifest.name}" (its own floor: ${model.manifest.recommendedSigmaMin ?? 'none'}), ` +
    `${defaults.sampler} ${defaults.steps} steps, N = ${n}, DG w = ${weight} — ${new Date().toISOString()}`,
);
for (const dg of halves) {
  for (const t0 of t0s) {
    const started = Date.now();
    const base = await run(t0, smallest, dg);
    const others = [base];
    for (const seed of [1000, 2000, 3000]) others.push(await run(t0, smallest, dg, seed));
    const spread = (f: (q: typeof base) => number) => Math.max(...others.map(f)) - Math.min(...others.map(f));
    const noise = { l2Source: spread((q) => q.l2Source), swd: spread((q) => q.swd) };
    console.log(
      `\n### t0 ${t0}, ${dg ? `DG w = ${weight}` : 'plain SDEdit'}: seed-noise floor (4 seeds) L2 source ±${noise.l2Source.toFixed(4)}, SWD ±${noise.swd.toFixed(1)}`,
    );
    console.log('| floor σ | ladder | L2 source | L2 truth | SWD | roughness ÷ Noto | SWD and L2 within the noise |');
    console.log('|---|---|---|---|---|---|---|');
    for (const floor of [smallest, ...floors]) {
      const q = floor === smallest ? base : await run(t0, floor, dg);
      const within = Math.abs(q.l2Source - base.l2Source) <= noise.l2Source && Math.abs(q.swd - base.swd) <= noise.swd;
      const ladder = model.schedule
        .sdeditSigmas(t0, defaults.steps, defaults.spacing, floor)
        .map((s) => s.toFixed(3))
        .join(' ');
      console.log(
        `| ${floor === smallest ? `${floor.toFixed(4)} (schedule)` : floor} | ${ladder} | ${q.l2Source.toFixed(4)} | ${q.l2Truth.toFixed(4)} | ${q.swd.toFixed(1)} | ${q.roughness.toFixed(3)} | ${within ? 'yes' : 'no'} |`,
      );
    }
    console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
}
await disc.dispose();
await model.dispose();
