/**
 * `dg-studio translate --model <SD folder> --prompt …` (issue 27) on the tiny random-weight fixture: images of
 * any aspect come back at their aspect (sides multiples of 8, said), with A1111's parameters text, in the gallery.
 */
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readPngText } from '../../src/main/engine/io/image-io.js';
import { Gallery } from '../../src/main/services/gallery.js';
import { translateLatentFiles } from '../../src/main/services/translate-latent-files.js';
import { latentSize } from '../../src/shared/sizes.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const model = join(root, 'test', 'fixtures', 'tiny-sd', 'diffusers');

describe('latent translation from the CLI', async () => {
  const dir = await tempDir();

  it('sizes keep the aspect, with sides multiples of 8 and the longest side bounded', () => {
    expect(latentSize(1024, 768)).toEqual({ width: 512, height: 384 });
    expect(latentSize(300, 120)).toEqual({ width: 304, height: 120 });
    expect(latentSize(6000, 6000)).toEqual({ width: 512, height: 512 });
    expect(latentSize(100, 60)).toEqual({ width: 104, height: 64 });
    expect(latentSize(3, 900)).toEqual({ width: 8, height: 512 });
  });

  it('translates a landscape JPEG and a square PNG with a prompt, into the folder and the gallery', async () => {
    await sharp({ create: { width: 100, height: 60, channels: 3, background: '#3a7bd5' } })
      .jpeg()
      .toFile(join(dir, 'landscape.jpg'));
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#d53a7b' } })
      .png()
      .toFile(join(dir, 'square.png'));
    const out = join(dir, 'out');
    const r = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        join(root, 'src/main/cli/index.ts'),
        'translate',
        join(dir, 'landscape.jpg'),
        join(dir, 'square.png'),
        '--model',
        model,
        '--prompt',
        'a watercolour',
        '--negative-prompt',
        'blurry',
        '--cfg',
        '5',
        '--t0',
        '0.5',
        '--steps',
        '3',
        '--out',
        out,
        '--gallery',
        join(dir, 'gallery'),
        '--no-progress',
      ],
      { cwd: root },
    );
    expect(r.stderr).toMatch(/landscape\.jpg: 100×60 translated at 104×64/);
    expect(r.stderr).toMatch(/done: 2 written/);
    const landscape = join(out, 'landscape-t0.5-cfg5-0.png');
    expect(await sharp(landscape).metadata()).toMatchObject({ width: 104, height: 64 });
    expect(await sharp(join(out, 'square-t0.5-cfg5-1.png')).metadata()).toMatchObject({ width: 64, height: 64 });
    const text = (await readPngText(landscape))['parameters']!;
    expect(text.split('\n').slice(0, 2)).toEqual(['a watercolour', 'Negative prompt: blurry']);
    expect(text).toMatch(/CFG scale: 5, Model: diffusers/);
    const g = await Gallery.open(join(dir, 'gallery'));
    try {
      const rows = g.search({});
      expect(rows.map((x) => x.sourceName).sort()).toEqual(['landscape.jpg', 'square.png']);
      expect(rows[0]!.params.prompt).toBe('a watercolour');
    } finally {
      g.db.close();
    }
  });

  it("what the flags leave out, the folder's dg-studio.json fills, and says so; a flag still wins", async () => {
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), ...args], { cwd: root });
    const tiny = join(root, 'tools', 'pretrained', 'tiny-sd-emoji', 'model');
    const src = join(root, 'resources', 'samples');
    const first = (await readdir(src)).filter((f) => f.endsWith('.png')).sort()[0]!;
    const out = join(dir, 'tiny-out');
    const r = await cli(
      'translate',
      join(src, first),
      '--model',
      tiny,
      '--cfg',
      '2',
      '--steps',
      '2',
      '--out',
      out,
      '--no-gallery',
      '--no-progress',
    );
    expect(r.stderr).toMatch(/note: prompt "noto emoji", negative prompt "twemoji", t0 0\.5 from .*tiny-sd-emoji\/model\/dg-studio\.json/);
    const [png] = (await readdir(out)).filter((f) => f.endsWith('.png'));
    const text = (await readPngText(join(out, png!)))['parameters']!;
    expect(text.split('\n').slice(0, 2)).toEqual(['noto emoji', 'Negative prompt: twemoji']);
    expect(text).toMatch(/CFG scale: 2,/);
    // a distilled model's few steps and sampler (SD-Turbo's kind of dg-studio.json): used unless given
    const turbo = join(dir, 'turbo');
    await cp(model, turbo, { recursive: true });
    await writeFile(join(turbo, 'dg-studio.json'), JSON.stringify({ steps: 1, sampler: 'euler', cfgScale: 0, recommendedT0: 0.5 }));
    const t = await cli('translate', join(src, first), '--model', turbo, '--out', join(dir, 'turbo-out'), '--no-gallery', '--no-progress');
    expect(t.stderr).toMatch(/note: CFG 0, t0 0\.5, 1 step, sampler euler from/);
    const [tpng] = (await readdir(join(dir, 'turbo-out'))).filter((f) => f.endsWith('.png'));
    expect((await readPngText(join(dir, 'turbo-out', tpng!)))['parameters']).toMatch(/Steps: 1, Sampler: euler,/);
  });

  it('inspect on a folder says what was read from it, and why a broken one cannot be used', async () => {
    const ok = await run(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), 'inspect', model, '--json'], {
      cwd: root,
    });
    expect(JSON.parse(ok.stdout)).toMatchObject({
      inputIds: 'int32',
      encoderOutput: 'latent_sample',
      prediction: 'epsilon',
      vaeScalingFactor: 0.18215,
    });
    const broken = join(dir, 'broken');
    await cp(model, broken, { recursive: true });
    await rm(join(broken, 'unet'), { recursive: true });
    const bad = await run(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), 'inspect', broken], {
      cwd: root,
    }).catch((e: { code: number; stderr: string }) => e);
    expect([(bad as { code: number }).code, (bad as { stderr: string }).stderr]).toEqual([
      2,
      expect.stringMatching(/lacks unet\/model\.onnx/),
    ]);
  });

  it('never writes over an earlier output: the same seed again goes beside it; keepNames names outputs after their inputs', async () => {
    const src = join(dir, 'again.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#40a040' } })
      .png()
      .toFile(src);
    const out = join(dir, 'again-out');
    const params = { t0: 0.4, steps: 2, seed: 3, prompt: 'art' };
    const once = await translateLatentFiles({ inputs: [src], outDir: out, params, modelFolder: model });
    const first = await readFile(once.outputs[0]!);
    const twice = await translateLatentFiles({ inputs: [src], outDir: out, params, modelFolder: model });
    expect(once.outputs[0]!.endsWith('again-t0.4-cfg7.5-3.png')).toBe(true);
    expect(twice.outputs[0]!.endsWith('again-t0.4-cfg7.5-3-1.png')).toBe(true);
    expect(Buffer.compare(await readFile(once.outputs[0]!), first)).toBe(0);
    const warnings: string[] = [];
    const kept = await translateLatentFiles(
      { inputs: [src, src], outDir: join(dir, 'kept'), params, modelFolder: model, keepNames: true },
      { onWarning: (w) => warnings.push(w) },
    );
    expect(kept.outputs.map((o) => basename(o))).toEqual(['again.png', 'again-1.png']);
    expect(warnings.join(' ')).toMatch(/"again.png" is taken/);
  });
});
