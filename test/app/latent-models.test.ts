/**
 * SD-family folders in the studio (issue 27): the settings' model folders are listed as latent, text-conditioned
 * score models, and a translation with one runs with its prompt into the gallery (tiny random-weight fixtures).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StudioBackend } from '../../src/main/backend/backend.js';
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
      await expect(b.dispatch('translate', [{ sources: ids, params: { ...params, dgWeight: 2 }, model: latent[1]!.id }])).rejects.toThrow(
        /DG for latent models is not there yet/,
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
});
