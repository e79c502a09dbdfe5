import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { runSweep, SWEEP_COLUMNS } from '../../src/main/services/sweep.js';
import { tempDir } from '../helpers/tmp.js';

describe('sweep over t0 × DG weight', async () => {
  const dir = await tempDir();
  const [src, ref, truth] = [join(dir, 'src'), join(dir, 'ref'), join(dir, 'truth')];
  for (const d of [src, ref, truth]) await mkdir(d);
  for (let i = 0; i < 3; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 40 * i, g: 80, b: 200 } } })
      .png()
      .toFile(join(src, `e${i}.png`));
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 230, g: 120 + 30 * i, b: 60 } } })
      .png()
      .toFile(join(ref, `r${i}.png`));
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 220, g: 100, b: 90 } } })
      .png()
      .toFile(join(truth, `e${i}.png`));
  }

  it('measures every setting with the same noise and writes CSV, JSON and frontier plots', async () => {
    const d = bundledDefaults();
    const out = join(dir, 'out');
    const { rows, truths, others, csv, plots } = await runSweep({
      inputs: [src],
      reference: [ref],
      groundTruth: [truth],
      // the reference's own files (same names) are left out of the other targets: what remains is the truths
      others: { files: [ref, truth], draws: 2 },
      t0s: [0.2, 0.6],
      weights: [0, 1],
      modelManifest: d.scoreModel,
      discriminatorManifest: d.discriminator!,
      params: { steps: 4, sampler: 'euler' },
      outDir: out,
    });
    expect(rows).toHaveLength(4);
    expect(csv.split('\n')[0]).toBe(SWEEP_COLUMNS.join(','));
    // larger t0 leaves the source further behind (the trade-off's faithfulness axis)
    const at = (t0: number, w: number) => rows.find((r) => r.t0 === t0 && r.w === w)!;
    expect(at(0.6, 0).l2Source).toBeGreaterThan(at(0.2, 0).l2Source);
    // guidance changes the result: the exact toy ratio pulls toward the low-grain target
    expect(at(0.6, 1).l2Source).not.toBe(at(0.6, 0).l2Source);
    // the reference here is flat colour: the roughness ratio has no denominator (null, not Infinity)
    expect(rows.every((r) => r.roughness === null)).toBe(true);
    // with the plain translations at t0 0.6 as the reference (grainy: the toy model's wide Gaussian), the
    // same run's plain row is exactly as rough as its reference, and the guided one smoother
    const rough = await runSweep({
      inputs: [src],
      reference: [join(out, 't0.6_w0')],
      // the truths are the reference images themselves: a perfect translation's score is 0 apart from the PNG
      groundTruth: [join(out, 't0.6_w0')],
      t0s: [0.6],
      weights: [0, 1],
      modelManifest: d.scoreModel,
      discriminatorManifest: d.discriminator!,
      params: { steps: 4, sampler: 'euler' },
      outDir: join(dir, 'rough'),
    });
    const [plain, guided] = [rough.rows.find((r) => r.w === 0)!, rough.rows.find((r) => r.w === 1)!];
    // the sources untranslated (flat blue) against a reference that is their translations: far, where doing the
    // translation scores ~0; in the first run, against flat orange, as far as the truths are not
    expect(rough.untranslated!.images).toBe(3);
    expect(rough.untranslated!.fd).toBeGreaterThan(0.01);
    expect(rough.untranslated!.fd).toBeGreaterThan(100 * plain.fd);
    expect(plain.roughness).toBeCloseTo(1, 2); // PNG rounding of the reference only
    // the truths row: what a perfect translation scores against the same reference — here the reference itself
    expect(rough.truths).toMatchObject({ images: 3, roughness: 1 });
    expect(rough.truths!.fd).toBeLessThan(1e-6);
    // SWD samples patches, so it is not 0 on identical sets; the plain row (the same images before PNG) scores the same
    expect(Math.abs(rough.truths!.swd - plain.swd)).toBeLessThan(0.01 * plain.swd);
    // flat truths against other flat colours are far from their reference: the row measures, it does not assume
    expect(truths!.images).toBe(3);
    expect(truths!.fd).toBeGreaterThan(0.01);
    // two draws of as many images as there are sources, from a pool that is exactly the truths: their realism
    expect(others.map((o) => o.images)).toEqual([3, 3]);
    for (const o of others) expect(o.fd).toBeCloseTo(truths!.fd, 9);
    expect(JSON.parse(await readFile(join(out, 'results.json'), 'utf8')).others).toHaveLength(2);
    expect(guided.roughness!).toBeLessThan(0.9 * plain.roughness!);
    expect(rows.every((r) => r.l2Truth !== null && r.images === 3)).toBe(true);
    for (const p of plots) expect((await sharp(p).metadata()).format).toBe('png');
    expect(existsSync(join(out, 't0.2_w1', 'e0.png'))).toBe(true);
    expect(JSON.parse(await readFile(join(out, 'results.json'), 'utf8')).rows).toHaveLength(4);
  }, 120_000);

  it('refuses DG weights without a discriminator', async () => {
    await expect(
      runSweep({
        inputs: [src],
        reference: [ref],
        t0s: [0.5],
        weights: [1],
        modelManifest: bundledDefaults().scoreModel,
        outDir: join(dir, 'x'),
      }),
    ).rejects.toThrow(/needs a discriminator/);
  });

  it('sweeps a latent model (tiny-sd-emoji with its latent discriminator) at its own size and text: DG changes the outputs', async () => {
    const tiny = join(import.meta.dirname, '..', '..', 'tools', 'pretrained', 'tiny-sd-emoji');
    const out = join(dir, 'latent');
    const { rows } = await runSweep({
      inputs: [src],
      reference: [ref],
      groundTruth: [truth],
      t0s: [0.5],
      weights: [0, 8],
      modelManifest: join(tiny, 'model'),
      discriminatorManifest: join(tiny, 'dg'),
      params: { steps: 3, seed: 1 },
      outDir: out,
    });
    expect(rows.map((r) => [r.t0, r.w, r.images, r.meanLogRatio])).toEqual([
      [0.5, 0, 3, null],
      [0.5, 8, 3, null],
    ]);
    expect(rows.every((r) => Number.isFinite(r.swd) && Number.isFinite(r.l2Source) && r.l2Truth !== null)).toBe(true);
    const json = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as { model: string };
    expect(json.model).toBe('tiny-sd-emoji (Twemoji → Noto, 64 px)');
    const [plain, guided] = await Promise.all(
      ['t0.5_w0', 't0.5_w8'].map((d) =>
        sharp(join(out, d, 'e0.png'))
          .raw()
          .toBuffer(),
      ),
    );
    expect((await sharp(join(out, 't0.5_w0', 'e0.png')).metadata()).width).toBe(64);
    expect(Buffer.compare(plain!, guided!)).not.toBe(0);
  }, 120_000);
});
