/**
 * The README's picture of the bundled default: the bundled Twemoji samples translated by the CLI
 * (plain SDEdit and with DG): one column per sample; rows source, SDEdit, DG.
 *
 *   npm run translate -- resources/samples/ --no-discriminator --keep-names --no-gallery --out .cache/grid/sdedit
 *   npm run translate -- resources/samples/ --keep-names --no-gallery --out .cache/grid/dg
 * (both at the model's recommended t0 and, with DG, the discriminator's recommended w)
 *   npx tsx tools/samples-grid.ts .cache/grid/sdedit .cache/grid/dg "DG (w = 32)" docs/screenshots/samples.png
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { imageGrid, readImage, type ImageSpec } from '../src/main/engine/io/image-io.js';
import { expandInputs } from '../src/main/services/translate-files.js';

const [sdedit, dg, dgLabel, out] = process.argv.slice(2);
if (!sdedit || !dg || !dgLabel || !out) throw new Error('usage: samples-grid.ts <sdedit dir> <dg dir> <dg label> <out.png>');
const spec: ImageSpec = { channels: 3, height: 64, width: 64, valueRange: [-1, 1] };
const samplesDir = join(import.meta.dirname, '..', 'resources', 'samples');
const samples = (await expandInputs([samplesDir])).filter((f) => basename(f).startsWith('twemoji-'));
const read = (dir: string) => Promise.all(samples.map((f) => readImage(join(dir, basename(f)), spec)));
const rows = [await read(samplesDir), await read(sdedit), await read(dg)];
// column headers: the emoji's name (twemoji-1f427-penguin.png → penguin)
const names = samples.map((f) =>
  basename(f, '.png')
    .replace(/^twemoji-[0-9a-f-]+?-(?=[a-z])/, '')
    .replace(/-/g, ' ')
    .slice(0, 16),
);
await writeFile(out, await imageGrid(rows, spec, names));
// the t0 the SDEdit row was made with, from its first sidecar
const sidecar = JSON.parse(await readFile(join(sdedit, basename(samples[0]!, '.png') + '.json'), 'utf8')) as { params: { t0: number } };
console.log(`rows: Twemoji source, SDEdit (t0 = ${sidecar.params.t0}), ${dgLabel}`);
console.log(`wrote ${out}`);
