/**
 * SD-family folders in the studio (issue 27): the settings' model folders are listed as latent, text-conditioned
 * score models, and a translation with one runs with its prompt into the gallery (tiny random-weight fixtures).
 */
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { StudioBackend } from '../../src/main/backend/backend.js';
import { trainDiscriminator } from '../../src/main/services/discriminator-training.js';
import type { GalleryItem, ModelEntry } from '../../src/shared/api.js';
import { untilJob } from '../helpers/jobs.js';
import { tempDir } from '../helpers/tmp.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tiny-sd');

describe('latent models in the studio', async () => {
  const dir = await tempDir();

  it('lists the folders of the settings, translates with a prompt, and refuses DG and relative folders in words', async () => {
    const b = await StudioBackend.create({ mode: 'server', dataDir: dir });
    try {
      await expect(b.dispatch('setSettings', [{ modelFolders: ['models/sd'] }])).rejects.toThrow(/absolute path/);
      await b.dispatch('setSettings', [{ modelFolders: [fixtures] }]);
      const latent = ((await b.dispatch('listModels', [])) as ModelEntry[]).filter((m) => m.latent);
      expect(latent.map((m) => [m.name, m.kind, m.problem ?? null])).toEqual([
        ['diffusers', 'score', null],
        ['optimum', 'score', null],
      ]);
      expect(latent[0]!.description).toMatch(/OnnxStableDiffusionPipeline, ε-prediction, leading timesteps/);
      const { sources } = (await b.dispatch('addSamples', [])) as { sources: { id: string }[] };
      const ids = sources.slice(0, 2).map((s) => s.id);
      const params = { t0: 0.5, steps: 2, dgWeight: 0, prompt: 'a watercolour', cfgScale: 4 };
      // the bundled discriminator is a pixel one: DG for a latent model needs one trained on its latents, picked
      await expect(b.dispatch('translate', [{ sources: ids, params: { ...params, dgWeight: 2 }, model: latent[1]!.id }])).rejects.toThrow(
        /DG for a latent model needs a discriminator trained on its latents/,
      );
      const { jobId } = (await b.dispatch('translate', [{ sources: ids, params, model: latent[1]!.id }])) as { jobId: number };
      const job = await untilJob(b, jobId);
      expect([job.state, job.error]).toEqual(['done', null]);
      const items = (await b.dispatch('gallerySearch', [{}])) as GalleryItem[];
      expect(items).toHaveLength(2);
      expect(items.every((i) => i.params.prompt === 'a watercolour' && i.params.cfgScale === 4)).toBe(true);
    } finally {
      await b.close();
    }
  }, 60_000);

  it('a folder lists under its dg-studio.json name and suggestions, else its name (a generic "model" under its parent’s); a bad file is said', async () => {
    const b = await StudioBackend.create({ mode: 'server', dataDir: join(dir, 'names') });
    try {
      const generic = join(dir, 'watercolours', 'model');
      await cp(join(fixtures, 'diffusers'), generic, { recursive: true });
      await b.dispatch('setSettings', [
        { modelFolders: [join(import.meta.dirname, '..', '..', 'tools', 'pretrained', 'tiny-sd-emoji'), generic] },
      ]);
      const latent = ((await b.dispatch('listModels', [])) as ModelEntry[]).filter((m) => m.latent);
      expect(latent.map((m) => [m.name, m.recommendedT0, m.latentDefaults ?? null, m.problem ?? null])).toEqual([
        [
          'tiny-sd-emoji (Twemoji → Noto, 64 px)',
          0.5,
          { cfgScale: 4, prompt: 'noto emoji', negativePrompt: 'twemoji', imageSize: 64 },
          null,
        ],
        ['watercolours', 0.6, null, null],
      ]);
      await writeFile(join(generic, 'dg-studio.json'), JSON.stringify({ cfg: 4 }));
      const bad = ((await b.dispatch('listModels', [])) as ModelEntry[]).find((m) => m.latent && m.name === 'watercolours');
      expect(bad?.problem).toMatch(/dg-studio\.json.*cfg/);
    } finally {
      await b.close();
    }
  });

  it('the Train tab trains a discriminator on a latent model: its size and text reach the package; a pixel model refuses them', async () => {
    const b = await StudioBackend.create({ mode: 'server', dataDir: join(dir, 'train-tab') });
    try {
      await b.dispatch('setSettings', [{ modelFolders: [fixtures] }]);
      const model = ((await b.dispatch('listModels', [])) as ModelEntry[]).find((m) => m.latent && m.name === 'diffusers')!.id;
      const { sources } = (await b.dispatch('addSamples', [])) as { sources: { id: string }[] };
      const ids = sources.map((s) => s.id);
      const req = { sources: ids.slice(0, 2), targets: ids.slice(2, 4), t0Range: [0.3, 0.5], steps: 2, batchSize: 4 };
      const latent = { imageSize: 64, prompt: 'a watercolour', negativePrompt: 'blurry', cfgScale: 4 };
      await expect(b.dispatch('trainDiscriminator', [{ ...req, name: 'pixel', latent }])).rejects.toThrow(
        /latent .*this target model works on pixels/,
      );
      await expect(
        b.dispatch('trainDiscriminator', [{ ...req, name: 'odd', model, latent: { ...latent, imageSize: 100 } }]),
      ).rejects.toThrow(/multiple of 8/);
      const { jobId } = (await b.dispatch('trainDiscriminator', [{ ...req, name: 'for-latents', model, latent }])) as { jobId: number };
      const job = await untilJob(b, jobId);
      expect([job.state, job.error]).toEqual(['done', null]);
      const manifest = JSON.parse(await readFile(join(dir, 'train-tab', 'discriminators', 'for-latents', 'manifest.json'), 'utf8')) as {
        dataShape: number[];
        training: { latentModel: { imageSize: number; prompt: string; negativePrompt: string; cfgScale: number } };
      };
      // 64×64 images, the fixture's VAE downsamples 8×: 4×8×8 latents
      expect(manifest.dataShape).toEqual([4, 8, 8]);
      expect(manifest.training.latentModel).toMatchObject({
        imageSize: 64,
        prompt: 'a watercolour',
        negativePrompt: 'blurry',
        cfgScale: 4,
      });
      const listed = ((await b.dispatch('listModels', [])) as ModelEntry[]).find(
        (m) => m.kind === 'discriminator' && m.name.startsWith('for-latents'),
      );
      expect(listed?.latentModel).toBe('diffusers');
    } finally {
      await b.close();
    }
  }, 120_000);

  it('lists a discriminator trained on a latent model as such, and guides that model’s translations with it', async () => {
    // a latent discriminator for the fixture (its samples are 64×64: 4×8×8 latents), made by the trainer and imported
    const disc = join(dir, 'latent-disc');
    const targets = join(dir, 'targets');
    await mkdir(targets);
    for (let i = 0; i < 4; i++)
      await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 240, g: 60 * i, b: 40 } } })
        .png()
        .toFile(join(targets, `t${i}.png`));
    await trainDiscriminator({
      modelManifest: join(fixtures, 'diffusers'),
      sources: [join(import.meta.dirname, '..', '..', 'resources', 'samples')],
      targets: [targets],
      outDir: disc,
      t0Range: [0.3, 0.5],
      steps: 4,
      batchSize: 4,
      channels: [8, 16],
      translationSteps: 1,
      latent: { imageSize: 64, prompt: 'a watercolour', cfgScale: 4 },
    });
    const b = await StudioBackend.create({ mode: 'server', dataDir: join(dir, 'guided') });
    try {
      await b.dispatch('setSettings', [{ modelFolders: [fixtures] }]);
      const files = await Promise.all(
        ['forward.onnx', 'guidance.onnx', 'manifest.json'].map(async (name) => ({
          name,
          data: new Uint8Array(await readFile(join(disc, name))),
        })),
      );
      const entry = (await b.dispatch('importModel', [{ kind: 'discriminator', files }])) as ModelEntry;
      expect(entry.latentModel).toBe('diffusers');
      const models = (await b.dispatch('listModels', [])) as ModelEntry[];
      expect(models.find((m) => m.kind === 'discriminator' && m.bundled)).not.toHaveProperty('latentModel');
      const model = models.find((m) => m.latent && m.name === 'diffusers')!.id;
      const { sources } = (await b.dispatch('addSamples', [])) as { sources: { id: string }[] };
      const params = { t0: 0.5, steps: 2, dgWeight: 2, prompt: 'a watercolour', cfgScale: 4 };
      const { jobId } = (await b.dispatch('translate', [{ sources: [sources[0]!.id], params, model, discriminator: entry.id }])) as {
        jobId: number;
      };
      const job = await untilJob(b, jobId);
      expect([job.state, job.error]).toEqual(['done', null]);
      const [item] = (await b.dispatch('gallerySearch', [{}])) as GalleryItem[];
      expect(item!.params.dgWeight).toBe(2);
      expect(item!.discriminatorName).toBe(entry.name);
    } finally {
      await b.close();
    }
  }, 60_000);
});
