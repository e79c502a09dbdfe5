/**
 * bench/sampler-sde-emoji: stochastic against deterministic samplers on the bundled default (the
 * Twemoji → Noto U-Net and its discriminator) — issue 26's question "the cheapest setting within a
 * stochastic reference's seed-noise floor". SDEdit of N held-out Twemoji (data/emoji/twitter/test, spread
 * over the sorted list) from t0, the same seeds for every setting, each setting with DG at the bundled
 * discriminator's recommended weight (or --weight) and without:
 *   L2 source  = RMS distance to the source (faithfulness)
 *   L2 truth   = RMS distance to the true Noto drawing of the same emoji (data/emoji/google/test)
 *   SWD        = sliced Wasserstein (Laplacian patches, ×1000) to 128 held-out Noto images (realism)
 *   roughness  = mean |4-neighbour Laplacian| of the outputs ÷ that of the 128 held-out Noto images
 * The reference is DDPM with --ref-steps (100) steps; its seed-noise floor is the spread of each measure
 * over 4 seeds. A setting is "within the floor" when L2 source and SWD both lie within it of the
 * reference's first seed.
 *
 *   npx tsx bench/sampler-sde-emoji.ts [N] [--t0 0.5] [--weight w] [--ref-steps 100] [--dg-only | --plain-only]
 *                                      [--model other/manifest.json]   (another score model, e.g. one in training)
 *                                      [--discriminator other/manifest.json]   (another discriminator, e.g. a pilot design)
 */
import { join } from 'node:path';
import { heldOutEmoji, mean } from './heldout-emoji.js';
import { SAMPLER_LABELS, TranslateParamsSchema } from '../src/shared/params.js';
import { loadDiscriminator } from '../src/main/engine/models/discriminator.js';
import { loadScoreModel } from '../src/main/engine/models/score-model.js';
import { networkEvaluations, type SamplerName } from '../src/main/engine/sampling/samplers.js';
import { translateBatch } from '../src/main/engine/sampling/translate.js';

const root = join(import.meta.dirname, '..');
const arg = (name: string, fallback: number) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};

const n = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 32);
const t0 = arg('--t0', 0.5);
const refSteps = arg('--ref-steps', 100);
const halves = process.argv.includes('--dg-only') ? [true] : process.argv.includes('--plain-only') ? [false] : [false, true];
const models = join(root, 'resources', 'models');
const modelAt = process.argv.indexOf('--model');
const model = await loadScoreModel(modelAt > 0 ? process.argv[modelAt + 1]! : join(models, 'noto-emoji-unet', 'manifest.json'));
const discAt = process.argv.indexOf('--discriminator');
const disc = await loadDiscriminator(discAt > 0 ? process.argv[discAt + 1]! : join(models, 'noto-emoji-dg', 'manifest.json'), {
  dataShape: model.manifest.dataShape,
  valueRange: model.manifest.valueRange,
});
const weight = arg('--weight', disc.manifest.recommendedWeight ?? 1);
const set = await heldOutEmoji(model, n);

async function run(sampler: SamplerName, steps: number, dg: boolean, firstSeed = 0) {
  const out = await translateBatch(
    model,
    set.batch,
    TranslateParamsSchema.parse({ t0, steps, sampler, dgWeight: dg ? weight : 0, batchSize: 8 }),
    { seeds: set.seeds(firstSeed), critic: dg ? disc.critic : undefined },
  );
  const q = set.measure(out);
  return { ...q, l2Source: mean(q.l2Source), l2Truth: mean(q.l2Truth) };
}
type Quality = Awaited<ReturnType<typeof run>>;

console.log(
  `sampler-sde-emoji: ${modelAt > 0 ? `"${model.manifest.name}"` : 'the bundled default'}, SDEdit from t0 = ${t0}, N = ${n}, DG w = ${weight}, reference DDPM ${refSteps} — ${new Date().toISOString()}`,
);
const settings: [SamplerName, number[]][] = [
  ['dpm++2m', [8, 15]],
  ['ddpm', [8, 10, 20, 50]], // Euler ancestral is the same sampler
  ['dpm++2m-sde', [8, 10, 15, 20]],
];
for (const dg of halves) {
  const t = Date.now();
  const floors: Quality[] = [];
  for (const seed of [0, 1000, 2000, 3000]) floors.push(await run('ddpm', refSteps, dg, seed));
  const spread = (f: (q: Quality) => number) => Math.max(...floors.map(f)) - Math.min(...floors.map(f));
  const floor = { l2Source: spread((q) => q.l2Source), swd: spread((q) => q.swd) };
  const ref = floors[0]!;
  console.log(
    `\n### ${dg ? `with DG (w = ${weight})` : 'without DG (plain SDEdit)'}: DDPM ${refSteps}: L2 source ${ref.l2Source.toFixed(4)}, L2 truth ${ref.l2Truth.toFixed(4)}, ` +
      `SWD ${ref.swd.toFixed(1)}, roughness ${ref.roughness.toFixed(3)}; seed-noise floor (4 seeds): L2 ±${floor.l2Source.toFixed(4)}, SWD ±${floor.swd.toFixed(1)} ` +
      `(${((Date.now() - t) / 1000).toFixed(0)} s)`,
  );
  console.log('| sampler | steps | NFE | L2 source | L2 truth | SWD | roughness ÷ Noto | within the reference floor |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [sampler, stepsList] of settings) {
    for (const steps of stepsList) {
      const q = await run(sampler, steps, dg);
      const within = Math.abs(q.l2Source - ref.l2Source) <= floor.l2Source && Math.abs(q.swd - ref.swd) <= floor.swd;
      console.log(
        `| ${SAMPLER_LABELS[sampler]} | ${steps} | ${networkEvaluations(sampler, steps)} | ${q.l2Source.toFixed(4)} | ${q.l2Truth.toFixed(4)} | ${q.swd.toFixed(1)} | ${q.roughness.toFixed(3)} | ${within ? 'yes' : 'no'} |`,
      );
    }
  }
}
await disc.dispose();
await model.dispose();
