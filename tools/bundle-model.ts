/**
 * Bundle a trained score model (and optionally a discriminator package) into resources/,
 * after checking it: the ONNX loads and matches its manifest, and the model denoises
 * held-out target images better than the per-pixel linear baseline at every checked t0
 * (src/main/engine/model-check.ts) — a model that produces noise is refused.
 *
 *   npx tsx tools/bundle-model.ts --score .cache/noto-unet --check data/emoji/google/test \
 *     --name noto-emoji-unet [--discriminator .cache/noto-dg --discriminator-name noto-emoji-dg] --default
 *
 * A model fetched from the GPU machine in pieces (part-aa, part-ab, … with model.onnx.sha256,
 * as a device call can bring a model back) is joined and its checksum verified first.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { Command } from 'commander';
import { list, num } from '../src/main/cli/options.js';
import { readImage } from '../src/main/engine/io/image-io.js';
import { NEVER_SHIP_NOISE, scoreModelCheck } from '../src/main/engine/models/model-check.js';
import { loadDiscriminator } from '../src/main/engine/models/discriminator.js';
import { loadScoreModel } from '../src/main/engine/models/score-model.js';
import { resourcesDir } from '../src/main/services/resources.js';
import { expandInputs, imageSpecOf } from '../src/main/services/translate-files.js';

export const RESOURCES_BUDGET_BYTES = 60 * 1024 * 1024;

/**
 * The folder to load the model from: `dir` itself when it holds model.onnx; else a fresh temporary
 * folder with its manifest and the `part-*` pieces joined (sorted by name) into model.onnx, checked
 * against `model.onnx.sha256` when present. `dir` is only read (the device tool's files are read-only).
 */
export async function joinParts(dir: string): Promise<string> {
  const parts = (await readdir(dir)).filter((n) => n.startsWith('part-')).sort();
  if (existsSync(join(dir, 'model.onnx')) || parts.length === 0) return dir;
  const bytes = Buffer.concat(await Promise.all(parts.map((p) => readFile(join(dir, p)))));
  const shaFile = join(dir, 'model.onnx.sha256');
  if (existsSync(shaFile)) {
    const want = (await readFile(shaFile, 'utf8')).trim().split(/\s+/)[0];
    const got = createHash('sha256').update(bytes).digest('hex');
    if (want !== got)
      throw new Error(
        `${dir}: the joined ${parts.join('+')} has sha256 ${got}, but model.onnx.sha256 says ${want}; a piece is missing or damaged`,
      );
  }
  const out = await mkdtemp(join(tmpdir(), 'dg-bundle-'));
  for (const f of await readdir(dir)) if (!f.startsWith('part-') && f.endsWith('.json')) await copyFile(join(dir, f), join(out, f));
  await writeFile(join(out, 'model.onnx'), bytes);
  console.log(`joined ${parts.length} pieces into ${join(out, 'model.onnx')} (${(bytes.length / 2 ** 20).toFixed(1)} MiB)`);
  return out;
}

/** Bytes of every file below `dir`. */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? await folderBytes(p) : (await stat(p)).size;
  }
  return total;
}

async function copyFolder(from: string, to: string, files: string[]): Promise<void> {
  if (resolve(from) === resolve(to)) return; // re-bundling what is already there: clearing it would delete the source
  await rm(to, { recursive: true, force: true });
  await mkdir(to, { recursive: true });
  for (const f of files) await copyFile(join(from, f), join(to, f));
}

/** Add a row for a bundled folder to resources/LICENSES.md's table (once). */
export async function recordLicense(resources: string, folder: string, what: string, source: string, license: string): Promise<void> {
  const path = join(resources, 'LICENSES.md');
  const text = await readFile(path, 'utf8');
  const key = `\`models/${folder}/\``;
  if (text.includes(key)) return;
  const lines = text.split('\n');
  const header = lines.findIndex((l) => l.startsWith('| Path |'));
  if (header < 0) throw new Error(`${path} has no table starting with "| Path |"`);
  let last = header + 1;
  while (lines[last + 1]?.startsWith('|')) last++;
  lines.splice(last + 1, 0, `| ${key} | ${what} | ${source} | ${license} |`);
  await writeFile(path, lines.join('\n'));
}

async function main() {
  const o = new Command('bundle-model')
    .requiredOption('--score <dir>', 'folder with manifest.json and model.onnx (or its part-* pieces)')
    .requiredOption('--check <dir>', 'held-out target-domain images for the denoising check')
    .option('--name <folder>', 'folder name under resources/models/', 'noto-emoji-unet')
    .option('--discriminator <dir>', 'a discriminator package (from train-discriminator) to bundle with it')
    .option('--discriminator-name <folder>', 'its folder name under resources/models/', 'noto-emoji-dg')
    .option(
      '--t0s <list>',
      't0 values to check (at larger t0 every denoiser approaches the data mean, so the ratio tends to 1 and says little)',
      list('--t0s'),
      [...NEVER_SHIP_NOISE.t0s],
    )
    .option(
      '--max-ratio <r>',
      "the model's denoising MSE must stay below r × the baseline's at every t0",
      num('--max-ratio'),
      NEVER_SHIP_NOISE.maxRatio,
    )
    .option('--images <n>', 'how many held-out images to check on', num('--images'), 64)
    .option('--default', 'make the bundle the default of every entry point (resources/models/defaults.json)')
    .option('--check-only', 'run the denoising check and print its ratios; bundle nothing (a model still in training)')
    .parse()
    .opts();
  const resources = resourcesDir();
  const scoreDir = await joinParts(o['score']);
  const manifestPath = join(scoreDir, 'manifest.json');
  const model = await loadScoreModel(manifestPath);
  try {
    const spec = imageSpecOf(model);
    const files = (await expandInputs([o['check']])).slice(0, o['images']);
    const images = await Promise.all(files.map((f) => readImage(f, spec)));
    const levels = await scoreModelCheck(model, images, o['t0s'] as number[]);
    console.log(`denoising check of "${model.manifest.name}" on ${images.length} images of ${o['check']}:`);
    levels.forEach((l, i) =>
      console.log(
        `  t0 ${o['t0s'][i]} (σ_ve ${l.sigma.toFixed(3)}): model MSE ${l.modelMse.toFixed(4)}, linear baseline ${l.baselineMse.toFixed(4)}, ratio ${l.ratio.toFixed(3)}`,
      ),
    );
    const bad = levels.filter((l) => !(l.ratio < o['maxRatio']));
    if (bad.length)
      throw new Error(
        `refusing to bundle ${manifestPath}: it does not denoise held-out images better than ${o['maxRatio']} × the per-pixel linear baseline ` +
          `(ratios ${levels.map((l) => l.ratio.toFixed(3)).join(', ')}); an untrained or broken model would produce noise`,
      );
    if (o['checkOnly']) {
      console.log(`passes the check (every ratio < ${o['maxRatio']}); --check-only: nothing bundled`);
      return;
    }
    const dest = join(resources, 'models', o['name']);
    await copyFolder(scoreDir, dest, ['manifest.json', basename(model.onnxPath)]);
    const report = [
      `# ${model.manifest.name}`,
      '',
      model.manifest.description ?? '',
      '',
      `Bundled by tools/bundle-model.ts on ${new Date().toISOString().slice(0, 10)}. License: ${model.manifest.license ?? 'see resources/LICENSES.md'}.`,
      '',
      `Denoising check on ${images.length} held-out target images (model MSE ÷ per-pixel linear MMSE baseline; below 1 = the model knows the data):`,
      '',
      '| t0 | σ_ve | ratio |',
      '| --- | --- | --- |',
      ...levels.map((l, i) => `| ${o['t0s'][i]} | ${l.sigma.toFixed(3)} | ${l.ratio.toFixed(3)} |`),
      '',
    ].join('\n');
    await writeFile(join(dest, 'README.md'), report);
    await recordLicense(
      resources,
      o['name'],
      `score model "${model.manifest.name}" (ONNX + manifest)`,
      'trained in this repository on the Noto training split (`docs/emoji-pipeline.md`)',
      model.manifest.license ?? 'see the model README',
    );
    let discRel: string | null = null;
    if (o['discriminator']) {
      const disc = await loadDiscriminator(join(o['discriminator'], 'manifest.json'), {
        dataShape: model.manifest.dataShape,
        valueRange: model.manifest.valueRange,
      });
      await disc.dispose();
      const ddest = join(resources, 'models', o['discriminatorName']);
      const keep = (await readdir(o['discriminator'])).filter((n) => n.endsWith('.onnx') || n === 'manifest.json' || n.endsWith('.md'));
      await copyFolder(o['discriminator'], ddest, keep);
      discRel = `${o['discriminatorName']}/manifest.json`;
      await recordLicense(
        resources,
        o['discriminatorName'],
        'discriminator (forward + guidance ONNX, manifest)',
        "trained by DG Studio's own trainer on the emoji training splits (`docs/emoji-pipeline.md`)",
        'weights: MIT; trained on Twemoji (CC-BY 4.0) and Noto Emoji (Apache License 2.0) images',
      );
    }
    const total = await folderBytes(resources);
    console.log(`resources/ is ${(total / 2 ** 20).toFixed(1)} MiB (budget ${RESOURCES_BUDGET_BYTES / 2 ** 20} MiB)`);
    if (total > RESOURCES_BUDGET_BYTES)
      throw new Error(`resources/ would be ${(total / 2 ** 20).toFixed(1)} MiB, over the 60 MiB budget; bundle a smaller model`);
    if (o['default']) {
      const defaultsPath = join(resources, 'models', 'defaults.json');
      const defaults = JSON.parse(await readFile(defaultsPath, 'utf8')) as Record<string, unknown>;
      defaults['scoreModel'] = `${o['name']}/manifest.json`;
      // a discriminator belongs to its model's domain pair: without a new one, DG is off by default
      defaults['discriminator'] = discRel;
      if (!discRel) console.warn('no --discriminator: the defaults will have none (DG needs --discriminator until one is bundled)');
      defaults['note'] = '';
      await writeFile(defaultsPath, JSON.stringify(defaults, null, 2) + '\n');
      console.log(`defaults: ${relative(resources, dest)}${discRel ? ` + ${discRel}` : ''}`);
    }
    console.log(`bundled into ${dest}`);
  } finally {
    await model.dispose();
  }
}

if (process.argv[1] && basename(process.argv[1]).startsWith('bundle-model')) {
  main().catch((e: unknown) => {
    console.error(`bundle-model: ${(e as Error).message}`);
    process.exit(1);
  });
}
