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
import { loadDiscriminator } from '../../src/main/engine/models/discriminator.js';
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

  it('guides a photo of another aspect (latents 4×8×16 for a 4×8×8 discriminator) as a convolutional net, saying so; refuses a pixel discriminator', async () => {
    const wide = join(dir, 'wide.png');
    await sharp({ create: { width: 128, height: 64, channels: 3, background: { r: 90, g: 140, b: 60 } } })
      .png()
      .toFile(wide);
    const warnings: string[] = [];
    const translateWide = (w: number, dest: string) =>
      translateLatentFiles(
        {
          inputs: [wide],
          outDir: join(dir, dest),
          params: { t0: 0.5, steps: 2, seed: 2, dgWeight: w, prompt: 'photo art', cfgScale: 2 },
          modelFolder: MODEL,
          discriminator: join(out, 'manifest.json'),
        },
        { onWarning: (m) => warnings.push(m) },
      );
    const [plain, guided] = [await translateWide(0, 'wide0'), await translateWide(50, 'wide50')];
    expect([plain.errors, guided.errors]).toEqual([[], []]);
    expect(await sharp(guided.outputs[0]!).metadata()).toMatchObject({ width: 128, height: 64 });
    expect(warnings.join(' ')).toMatch(/trained on latents of 4×8×8; this image's are 4×8×16 .* a size it has not seen/);
    const [a, b] = await Promise.all([plain, guided].map((r) => sharp(r.outputs[0]!).raw().toBuffer()));
    expect(Buffer.compare(a!, b!)).not.toBe(0);
    // at the size it was trained at, the rebuilt guidance graph gives the packaged one's gradient
    const [packaged, rebuilt] = await Promise.all(
      [false, true].map((free) => loadDiscriminator(join(out, 'manifest.json'), undefined, {}, null, free)),
    );
    const x = { data: Float32Array.from({ length: 2 * 4 * 8 * 8 }, (_, i) => Math.sin(i)), shape: [2, 4, 8, 8] };
    const tau = Float64Array.from([0.1, 0.4]);
    const [g1, g2] = await Promise.all([packaged!, rebuilt!].map((d) => d.critic.evaluate(x, tau)));
    expect(g2!.grad.data.reduce((m, v, i) => Math.max(m, Math.abs(v - g1!.grad.data[i]!)), 0)).toBeLessThan(1e-5);
    await Promise.all([packaged!.dispose(), rebuilt!.dispose()]);
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
