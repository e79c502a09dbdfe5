/**
 * The app's bundled default (resources/): the Twemoji → Noto emoji score model and its
 * discriminator. The other tests run against the toy fixture (vitest.config.ts); these load the
 * real files, as `npm run translate -- resources/samples/` does on a fresh clone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readImage, type ImageSpec } from '../../src/main/engine/io/image-io.js';
import { l2 } from '../../src/main/engine/eval/metrics.js';
import { NEVER_SHIP_NOISE, scoreModelCheck } from '../../src/main/engine/models/model-check.js';
import { loadScoreModel } from '../../src/main/engine/models/score-model.js';
import { expandInputs, imageSpecOf, translateFiles } from '../../src/main/services/translate-files.js';
import { tempDir } from '../helpers/tmp.js';

const resources = join(import.meta.dirname, '..', '..', 'resources');
const defaults = JSON.parse(readFileSync(join(resources, 'models', 'defaults.json'), 'utf8')) as {
  scoreModel: string;
  discriminator: string | null;
  note?: string;
};
const modelManifest = join(resources, 'models', defaults.scoreModel);
const samples = join(resources, 'samples');

describe('the bundled default: Twemoji → Noto emoji', () => {
  it('is a trained score model with its discriminator, not the toy, and says nothing about a toy', () => {
    expect(defaults.scoreModel).toBe('noto-emoji-unet/manifest.json');
    expect(defaults.discriminator).toBe('noto-emoji-dg/manifest.json');
    expect(defaults.note ?? '').toBe('');
    const m = JSON.parse(readFileSync(modelManifest, 'utf8'));
    // t0 0.3 with the stochastic default sampler: more faithful, more realistic and smoother than at 0.5
    // (bench/sampler-sde-emoji at t0 0.3 and 0.5, docs/benchmarks.md); 0.5 destroys more than this U-Net redraws
    expect(m).toMatchObject({ prediction: 'eps', dataShape: [3, 64, 64], validTimeRange: [0, 0.8], recommendedT0: 0.3 });
    expect(m.training.imagesSeen).toBeGreaterThan(100_000);
    expect(m.license).toMatch(/Noto/);
    // the measured weight (docs/benchmarks.md, dg-pilot; docs/results.md) is the CLI's and studio's default w: the one
    // that lowers SWD at every t0 measured without moving images away from their true targets
    expect(JSON.parse(readFileSync(join(resources, 'models', defaults.discriminator!), 'utf8')).recommendedWeight).toBe(16);
  });

  it('never ships noise: it denoises the bundled samples far better than the per-pixel linear baseline', async () => {
    const model = await loadScoreModel(modelManifest);
    try {
      const images = await Promise.all((await expandInputs([samples])).map((f) => readImage(f, imageSpecOf(model))));
      const levels = await scoreModelCheck(model, images, NEVER_SHIP_NOISE.t0s);
      for (const l of levels) expect(l.ratio).toBeLessThan(NEVER_SHIP_NOISE.maxRatio);
      // at the lowest noise level a trained emoji model is an order of magnitude better
      expect(levels[0]!.ratio).toBeLessThan(0.3);
    } finally {
      await model.dispose();
    }
  });

  it('translates samples with DG: finite images, each changed yet still near its source', async () => {
    const out = await tempDir();
    const files = ['smiley.png', 'twemoji-1f427-penguin.png'].map((f) => join(samples, f));
    const { outputs, errors } = await translateFiles({
      inputs: files,
      outDir: out,
      params: { t0: 0.5, dgWeight: 1 },
      modelManifest,
      discriminatorManifest: join(resources, 'models', defaults.discriminator!),
    });
    expect(errors).toEqual([]);
    expect(outputs).toHaveLength(2);
    expect(outputs[0]!.discriminator).not.toBeNull();
    const spec: ImageSpec = { channels: 3, height: 64, width: 64, valueRange: [-1, 1] };
    for (const [i, o] of outputs.entries()) {
      const [src, res] = [await readImage(files[i]!, spec), await readImage(o.output, spec)];
      const d = l2(src, res);
      expect(d).toBeGreaterThan(0.03);
      expect(d).toBeLessThan(0.6);
    }
  });
});
