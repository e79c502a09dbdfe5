/**
 * Re-measures the images sweeps kept (`<dir>/t<t0>_w<w>/*.png` beside its results.json: `npm run evidence`'s
 * `.cache/evidence/sweep`, or `dg-studio sweep … --out <dir>`) against another reference set: FD, KID and SWD, and
 * each DG setting's ratio to plain SDEdit's interpolated at the same L2 to the source (the evidence's frontier). For
 * the question the evidence's paired reference cannot answer alone: do the gains hold against target images of
 * other subjects, which share nothing with the translations but the domain?
 *
 *   npx tsx tools/remeasure-sweep.ts --reference data/emoji/google/train --truths data/emoji/google/test \
 *     "one round=.cache/evidence/sweep" "two rounds=.cache/r2sweep"
 *
 * Plain SDEdit (w = 0) comes from the first sweep that has it; other sweeps' plain rows (other seeds, say: the
 * seed-noise floor against this reference) are listed beside it. Prints a markdown table.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import sharp from 'sharp';
import { readImage, type ImageSpec } from '../src/main/engine/io/image-io.js';
import type { ImageShape } from '../src/main/engine/eval/metrics.js';
import { createFeatureExtractor } from '../src/main/engine/models/features.js';
import { f3, frontierGaps } from '../src/main/services/evidence-report.js';
import { measureImages, measureReference } from '../src/main/services/sweep.js';
import { expandInputs } from '../src/main/services/translate-files.js';
import type { SweepRow } from '../src/shared/api.js';

const program = new Command('remeasure-sweep')
  .description("re-measure sweeps' kept images against another reference set (FD, KID, SWD; ratios to plain SDEdit at equal L2)")
  .argument('<sweeps...>', 'label=folder of a sweep (its results.json and t<t0>_w<w>/ images)')
  .requiredOption('--reference <dir>', 'the reference set (e.g. target images of other subjects)')
  .option('--truths <dir>', 'the true targets, measured the same way: what a perfect translation scores against this reference')
  .parse();
const opts = program.opts<{ reference: string; truths?: string }>();
const sweeps = program.args.map((a) => {
  const eq = a.indexOf('=');
  if (eq <= 0) program.error(`"${a}" is not label=folder`);
  return { label: a.slice(0, eq), dir: a.slice(eq + 1) };
});

const firstDir = sweeps[0]!.dir;
const firstSetting = (await readdir(firstDir)).find((d) => /^t[\d.]+_w[\d.]+$/.test(d));
if (!firstSetting) throw new Error(`"${firstDir}" holds no t<t0>_w<w> folders: was the sweep run with --no-images?`);
const firstImage = (await readdir(join(firstDir, firstSetting))).find((f) => f.endsWith('.png'))!;
const meta = await sharp(join(firstDir, firstSetting, firstImage)).metadata();
const spec: ImageSpec = { channels: 3, height: meta.height!, width: meta.width!, valueRange: [-1, 1] };
const shape: ImageShape = { channels: 3, height: spec.height, width: spec.width, range: spec.valueRange };
const extractor = await createFeatureExtractor({ channels: 3 });
const readAll = async (files: string[]) => Promise.all(files.map((f) => readImage(f, spec)));

// measured as the sweep measures a setting (src/main/services/sweep.ts): the same SWD, FD and KID
const reference = await measureReference(await expandInputs([opts.reference]), spec, shape, extractor, undefined);
async function realism(images: Float32Array[]) {
  const r = await measureImages(images, shape, extractor, reference);
  if (!r) throw new Error(`a set of ${images.length} image(s): need at least 2`);
  return r;
}

type Measured = SweepRow & { label: string; heldFd: number };
const measured: Measured[] = [];
for (const { label, dir } of sweeps) {
  const rows = (JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as { rows: SweepRow[] }).rows;
  for (const r of rows) {
    const folder = join(dir, `t${r.t0}_w${r.w}`);
    const files = (await readdir(folder))
      .filter((f) => f.endsWith('.png'))
      .sort()
      .map((f) => join(folder, f));
    measured.push({ ...r, ...(await realism(await readAll(files))), label, heldFd: r.fd });
  }
}
const plain = measured.filter((r) => r.w === 0 && r.label === measured.find((m) => m.w === 0)?.label);
const ratio = (rows: Measured[], metric: 'fd' | 'swd', r: Measured) => {
  const gap = frontierGaps(rows, metric).find((g) => g.t0 === r.t0 && g.w === r.w)?.gap;
  return gap === null || gap === undefined ? '–' : (r[metric] / (r[metric] - gap)).toFixed(3);
};
console.log(`Against ${reference.features.length} images of ${opts.reference} (FD and KID: ${extractor.name}):\n`);
if (opts.truths) {
  const t = await realism(await readAll(await expandInputs([opts.truths])));
  console.log(`- the true targets (${opts.truths}): FD ${f3(t.fd)}, KID ${f3(t.kid)}, SWD ${f3(t.swd)}\n`);
}
console.log('| sweep | t0 | w | L2 source | FD (its own reference) | FD | FD ÷ plain | KID | SWD | SWD ÷ plain |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of plain)
  console.log(`| plain | ${r.t0} | 0 | ${r.l2Source.toFixed(4)} | ${f3(r.heldFd)} | ${f3(r.fd)} | 1 | ${f3(r.kid)} | ${f3(r.swd)} | 1 |`);
// plain SDEdit of the other sweeps (other seeds, say): beside the first's, for the seed-noise floor against this reference
for (const r of measured.filter((m) => m.w === 0 && !plain.includes(m)))
  console.log(
    `| plain (${r.label}) | ${r.t0} | 0 | ${r.l2Source.toFixed(4)} | ${f3(r.heldFd)} | ${f3(r.fd)} | – | ${f3(r.kid)} | ${f3(r.swd)} | – |`,
  );
for (const { label } of sweeps) {
  const mine = measured.filter((r) => r.label === label && r.w > 0);
  const rows = [...plain, ...mine];
  for (const r of mine)
    console.log(
      `| ${label} | ${r.t0} | ${r.w} | ${r.l2Source.toFixed(4)} | ${f3(r.heldFd)} | ${f3(r.fd)} | ${ratio(rows, 'fd', r)} | ${f3(r.kid)} | ${f3(r.swd)} | ${ratio(rows, 'swd', r)} |`,
    );
}
await extractor.dispose();
