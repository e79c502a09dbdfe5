/**
 * Prepares the bundled demo's paired domains from npm (run: npx tsx tools/prepare-emoji.ts):
 * Twitter's Twemoji (source) and Google's Noto emoji (target), 64×64 PNGs composited on
 * white, only emoji present in both sets, split 80/20 *by emoji* (FNV-1a of the file name,
 * the same split function the discriminator trainer uses), so held-out emoji are never
 * used to train the score model or the discriminator.
 *
 * Output: data/emoji/{twitter,google}/{train,test}/<codepoints>.png and data/emoji/README.md.
 * Image licenses (emoji-datasource 16.0.0 README): Twemoji graphics © Twitter/X and other
 * contributors, CC-BY 4.0; Noto Emoji © Google, Apache License 2.0.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { isValidation } from '../src/main/services/training-images.js';

const VERSION = '16.0.0';
const SETS = ['twitter', 'google'] as const;
const root = join(import.meta.dirname, '..');
const cache = join(root, '.cache', 'emoji');
const out = join(root, 'data', 'emoji');
export const TEST_FRACTION = 0.2;

async function fetchSet(set: string): Promise<string> {
  const dir = join(cache, set);
  const imgDir = join(dir, 'package', 'img', set, '64');
  if (existsSync(imgDir) && existsSync(join(dir, 'package', 'emoji.json'))) return imgDir;
  await mkdir(dir, { recursive: true });
  const tgz = `emoji-datasource-${set}-${VERSION}.tgz`;
  if (!existsSync(join(cache, tgz)))
    execFileSync('npm', ['pack', `emoji-datasource-${set}@${VERSION}`, '--pack-destination', cache], { stdio: 'inherit' });
  execFileSync('tar', ['xzf', join(cache, tgz), '-C', dir, `package/img/${set}/64`, 'package/emoji.json']);
  return imgDir;
}

/**
 * The image names whose vendor image is the vendor's own: emoji-datasource marks a missing image with
 * `has_img_<set>: false` (spritesheets fill such gaps with another vendor's image, whose license differs).
 */
async function ownImages(set: string): Promise<Set<string>> {
  type Entry = { image: string; skin_variations?: Record<string, Entry> } & Record<string, unknown>;
  const entries = JSON.parse(await readFile(join(cache, set, 'package', 'emoji.json'), 'utf8')) as Entry[];
  const own = new Set<string>();
  for (const e of entries)
    for (const v of [e, ...Object.values(e.skin_variations ?? {})]) if (v[`has_img_${set}`] === true) own.add(v.image);
  return own;
}

async function main() {
  const dirs = Object.fromEntries(await Promise.all(SETS.map(async (s) => [s, await fetchSet(s)] as const)));
  const names = await Promise.all(SETS.map(async (s) => new Set((await readdir(dirs[s]!)).filter((n) => n.endsWith('.png')))));
  const own = await Promise.all(SETS.map(ownImages));
  const present = [...names[0]!].filter((n) => names[1]!.has(n));
  const both = present.filter((n) => own.every((o) => o.has(n))).sort();
  if (both.length < present.length) console.log(`dropped ${present.length - both.length} emoji whose image is another vendor's fallback`);
  let counts = { train: 0, test: 0 };
  for (const set of SETS) for (const split of ['train', 'test']) await mkdir(join(out, set, split), { recursive: true });
  for (const name of both) {
    const split = isValidation(name, TEST_FRACTION) ? 'test' : 'train';
    counts = { ...counts, [split]: counts[split] + 1 };
    for (const set of SETS) {
      await sharp(join(dirs[set]!, name))
        .resize(64, 64)
        .flatten({ background: '#ffffff' })
        .removeAlpha()
        .png()
        .toFile(join(out, set, split, name));
    }
  }
  await writeFile(
    join(out, 'README.md'),
    [
      `# Emoji pair (prepared by tools/prepare-emoji.ts from emoji-datasource-* ${VERSION})`,
      '',
      `${both.length} emoji present in both sets: ${counts.train} train, ${counts.test} test (split by emoji, FNV-1a of the file name < ${TEST_FRACTION}).`,
      '',
      '- `twitter/`: Twemoji graphics, © Twitter/X and other contributors, licensed CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/).',
      '- `google/`: Noto Emoji, © Google, licensed under the Apache License 2.0 (flags: region-flags, public domain).',
      '',
      "Every image is the vendor's own (`has_img_*` in emoji-datasource's emoji.json); see resources/LICENSES.md.",
      '',
      'Images are composited on white and kept at 64×64.',
    ].join('\n'),
  );
  console.log(`wrote ${both.length} emoji pairs to ${out} (${counts.train} train, ${counts.test} test)`);
}

await main();
