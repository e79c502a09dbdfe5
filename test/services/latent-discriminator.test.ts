/**
 * DG in latent space (issue 27): train-discriminator on a Stable Diffusion-family folder learns on its latents
 * (encoded once, cached), and the latent translation uses that discriminator's gradient; a discriminator made for
 * other inputs, or an image whose latents have another size, is refused in words.
 */
import { readdir, readFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { trainDiscriminator } from '../../src/main/services/discriminator-training.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { translateLatentFiles } from '../../src/main/services/translate-latent-files.js';
import { tempDir } from '../helpers/tmp.js';

const MODEL = resolve('test/fixtures/tiny-sd/diffusers');

describe('latent discriminator guidance', async () => {
  const dir = await tempDir();
  const [src, tgt] = [join(dir, 'source'), join(dir, 'target')];
  await mkdir(src);
  await mkdir(tgt);
  for (let i = 0; i < 5; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 20 * i, g: 40, b: 200 } } })
      .png()
      .toFile(join(src, `s${i}.png`));
    await sharp({ create: { width: 96, height: 80, channels: 3, background: { r: 230, g: 150 + 10 * i, b: 30 } } })
      .png()
      .toFile(join(tgt, `t${i}.png`));
  }
  const out = join(dir, 'disc');
  const stages: string[] = [];
  const request = {
    modelManifest: MODEL,
    sources: [src],
    targets: [tgt],
    outDir: out,
    t0Range: [0.3, 0.5] as [number, number],
    steps: 12,
    batchSize: 8,
    channels: [8, 16],
    translationSteps: 2,
    evalEvery: 6,
    valFraction: 0.3,
    latent: { imageSize: 64, prompt: 'photo art', negativePrompt: '', cfgScale: 2 },
  };

  it('trains on the latents, with an ETA for the encoding, and records the latent space in its package', async () => {
    const r = await trainDiscriminator(request, { onStage: (m) => stages.push(m) });
    expect(r.steps).toBe(12);
    const manifest = JSON.parse(await readFile(r.manifestPath, 'utf8'));
    // 64×64 images through the fixture's factor-8 VAE: 4×8×8 latents
    expect(manifest.dataShape).toEqual([4, 8, 8]);
    expect(manifest.training.latentModel).toMatchObject({ folder: 'diffusers', imageSize: 64, prompt: 'photo art', cfgScale: 2 });
    expect(manifest.training.data.fakeTrain + manifest.training.data.fakeVal).toBe(10); // 5 sources + 5 translations
    expect(stages.some((s) => /encoding images with the VAE: 5\/5, .* done/.test(s))).toBe(true);
    expect(stages.some((s) => /unguided latent translations \(1 per source\): 5\/5/.test(s))).toBe(true);
    // encoded once: a second run reads the latents and the translations from the cache
    const cached = [...(await readdir(join(out, 'cache', 'latents'))), ...(await readdir(join(out, 'cache', 'translations')))];
    expect(cached.length).toBe(15);
    const again = await trainDiscriminator({ ...request, steps: 2 });
    expect(again.steps).toBe(2);
    expect([...(await readdir(join(out, 'cache', 'latents'))), ...(await readdir(join(out, 'cache', 'translations')))].length).toBe(15);
  });

  it('guides the latent translation: the same seed with w > 0 ends elsewhere than without', async () => {
    const translate = async (w: number, dest: string) => {
      const r = await translateLatentFiles({
        inputs: [join(src, 's1.png')],
        outDir: join(dir, dest),
        params: { t0: 0.5, steps: 3, seed: 4, dgWeight: w, prompt: 'photo art', cfgScale: 2 },
        modelFolder: MODEL,
        discriminator: join(out, 'manifest.json'),
      });
      expect(r.errors).toEqual([]);
      const { data } = await sharp(r.outputs[0]!).raw().toBuffer({ resolveWithObject: true });
      return data;
    };
    const [plain, plainAgain, guided] = [await translate(0, 'w0'), await translate(0, 'w0b'), await translate(50, 'w50')];
    expect(Buffer.compare(plain, plainAgain)).toBe(0);
    let diff = 0;
    for (let i = 0; i < plain.length; i++) diff += Math.abs(plain[i]! - guided[i]!);
    expect(diff / plain.length).toBeGreaterThan(0.05);
  });

  it('refuses an image whose latents are not the discriminator’s size, and a pixel discriminator', async () => {
    const wide = join(dir, 'wide.png');
    await sharp({ create: { width: 128, height: 64, channels: 3, background: { r: 9, g: 9, b: 9 } } })
      .png()
      .toFile(wide);
    const r = await translateLatentFiles({
      inputs: [wide],
      outDir: join(dir, 'wide'),
      params: { t0: 0.5, steps: 2, dgWeight: 1 },
      modelFolder: MODEL,
      discriminator: join(out, 'manifest.json'),
    });
    expect(r.outputs).toEqual([]);
    expect(r.errors[0]!.message).toMatch(/trained on latents of 4×8×8, this image's are 4×8×16/);
    await expect(
      translateLatentFiles({
        inputs: [join(src, 's0.png')],
        outDir: join(dir, 'pixel'),
        params: { t0: 0.5, steps: 2, dgWeight: 1 },
        modelFolder: MODEL,
        discriminator: bundledDefaults().discriminator!,
      }),
    ).rejects.toThrow(/takes 3×64×64 inputs, not 4-channel latents/);
  });
});
