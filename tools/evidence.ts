/**
 * `npm run evidence`: the t0 × w sweep on held-out emoji that docs/results.md reports
 * (see src/main/services/evidence.ts). Needs `npx tsx tools/prepare-emoji.ts` once.
 *
 *   npm run evidence                                  # bundled default models, 64 held-out emoji
 *   npm run evidence -- --limit 0 --steps 40          # every held-out emoji, more steps
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { list, num } from '../src/main/cli/options.js';
import { SAMPLER_NAMES, type TranslateParamsInput } from '../src/shared/params.js';
import { isDiffusersFolder, readDiffusersFolder } from '../src/main/engine/models/diffusers-folder.js';
import { runEvidence, type DiscriminatorCandidate } from '../src/main/services/evidence.js';
import { bundledDefaults } from '../src/main/services/resources.js';

function collectDesign(value: string, prev: DiscriminatorCandidate[]): DiscriminatorCandidate[] {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw new InvalidArgumentError(`"${value}" is not label=manifest`);
  return [...prev, { name: value.slice(0, eq), manifest: value.slice(eq + 1) }];
}

const root = join(import.meta.dirname, '..');
const program = new Command('evidence')
  .description('Does DG lift the realism–faithfulness curve? Sweep t0 × w on held-out pairs and write docs/results.md')
  .option('--sources <dir>', 'held-out source images', join(root, 'data/emoji/twitter/test'))
  .option('--targets <dir>', 'held-out target images (same file names as the sources)', join(root, 'data/emoji/google/test'))
  .option('--model <manifest>', 'score model manifest (default: the bundled default)')
  .option('--discriminator <manifest>', 'discriminator manifest (default: the bundled default)')
  .option('--t0s <list>', 't0 values', list('--t0s'), [0.35, 0.45, 0.55, 0.65])
  .option('--weights <list>', 'DG weights (0 = plain SDEdit is always included)', list('--weights'), [0, 4, 16, 32])
  .option('--limit <n>', 'how many held-out sources (spread over the list; 0 = all)', num('--limit'), 64)
  .option('--steps <n>', "sampler steps from t0 down to 0 (default: the app's)", num('--steps'))
  .option('--sampler <name>', `one of ${SAMPLER_NAMES.join(', ')} (default: the app's)`)
  .option('--dg-weight2 <w>', "Heun's second-stage weight (default: the same as w; the paper uses 0)", num('--dg-weight2'))
  .option('--seed <n>', 'first seed', num('--seed'), 0)
  .option('--batch <n>', 'batch size', num('--batch'), 8)
  .option('--grid-t0 <t0>', 'the t0 of the image grid', num('--grid-t0'), 0.55)
  .option('--grid-weight <w>', 'the DG weight of the image grid', num('--grid-weight'), 16)
  .option('--grid-rows <n>', 'images in the grid', num('--grid-rows'), 8)
  .option('--floor-t0 <t0>', 'the t0 of the seed-noise floor (plain SDEdit rerun with other seeds)', num('--floor-t0'), 0.55)
  .option('--docs <dir>', 'where results.md and results/ go', join(root, 'docs'))
  .option('--work <dir>', 'where every translated image is kept', join(root, '.cache/evidence'))
  .option('--threads <n>', 'ONNX Runtime intra-op threads', num('--threads'))
  .option('--name <label>', "the discriminator's label in the design table", 'bundled')
  .option('--design <label=manifest...>', 'another discriminator design to compare (repeatable)', collectDesign, [])
  .option('--reading <file>', 'a hand-written reading (markdown) to put before the generated one')
  .option(
    '--others <dir>',
    'target-domain images of other subjects (never paired with a source): how real images score when they do not share the reference’s subjects',
    join(root, 'data/emoji/google/train'),
  )
  .option('--no-others', 'do not measure real targets of other subjects')
  .parse();

const o = program.opts();
for (const dir of [o['sources'], o['targets'], ...(o['others'] ? [o['others']] : [])] as string[])
  if (!existsSync(dir)) program.error(`"${dir}" does not exist; prepare the emoji pair first: npx tsx tools/prepare-emoji.ts`);
const defaults = bundledDefaults();
const model = (o['model'] as string | undefined) ?? defaults.scoreModel;
const discriminator =
  (o['discriminator'] as string | undefined) ??
  defaults.discriminator ??
  program.error('no discriminator: pass --discriminator (the bundled defaults have none)');
if (!o['model'] && defaults.note) console.warn(`note: ${defaults.note}`);
const params: TranslateParamsInput = {
  ...(o['steps'] !== undefined ? { steps: o['steps'] } : {}),
  ...(o['sampler'] !== undefined ? { sampler: o['sampler'] } : {}),
  seed: o['seed'],
  batchSize: o['batch'],
  ...(o['dgWeight2'] !== undefined ? { dgWeight2: o['dgWeight2'] } : {}),
};
/** A latent model's text and size, as its folder suggests them (what the sweep uses: the parameters give none). */
function latentNote(folder: string): string[] {
  if (!isDiffusersFolder(folder)) return [];
  const d = readDiffusersFolder(folder).defaults;
  return [
    `Latent model (a Stable Diffusion-family folder): prompt "${d.prompt ?? ''}", negative prompt "${d.negativePrompt ?? ''}", CFG ${d.cfgScale ?? 7.5}, images at ${d.imageSize ?? 512}×${d.imageSize ?? 512} (its dg-studio.json).`,
  ];
}

const t = Date.now();
const result = await runEvidence(
  {
    sources: [o['sources']],
    targets: [o['targets']],
    modelManifest: model,
    discriminatorManifest: discriminator,
    t0s: o['t0s'],
    weights: o['weights'],
    limit: o['limit'],
    params,
    docsDir: o['docs'],
    workDir: o['work'],
    gridT0: o['gridT0'],
    gridWeight: o['gridWeight'],
    gridRows: o['gridRows'],
    floorT0: o['floorT0'],
    threads: o['threads'],
    discriminatorName: o['name'],
    candidates: o['design'],
    ...(o['reading'] ? { readingMarkdown: readFileSync(o['reading'] as string, 'utf8') } : {}),
    otherTargets: o['others'] ? [o['others'] as string] : undefined,
    provenance: [`Machine: ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, ONNX Runtime CPU.`, ...latentNote(model)],
  },
  (m) => console.log(m),
);
console.log(`wrote ${result.files.join(', ')} in ${Math.round((Date.now() - t) / 1000)} s`);
