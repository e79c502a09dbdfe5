import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { diagnosePaths } from '../../src/main/services/path-diagnostics.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { tempDir } from '../helpers/tmp.js';

describe('path diagnostics (paper Fig. 8)', async () => {
  const dir = await tempDir();
  const [src, ref] = [join(dir, 'src'), join(dir, 'ref')];
  await mkdir(src);
  await mkdir(ref);
  for (let i = 0; i < 2; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 20, g: 60 * i, b: 200 } } })
      .png()
      .toFile(join(src, `s${i}.png`));
    await sharp(join(import.meta.dirname, '../fixtures/toy-resources/models/toy-gaussian-64-dg/mean.png')).toFile(join(ref, `r${i}.png`));
  }

  it('guided paths reach higher log r than unguided ones; CSV and plot are written', async () => {
    const d = bundledDefaults();
    const { rows, plotPath } = await diagnosePaths({
      sources: [src],
      reference: [ref],
      modelManifest: d.scoreModel,
      discriminatorManifest: d.discriminator!,
      t0: 0.5,
      weight: 1,
      params: { steps: 6, sampler: 'euler' },
      outDir: join(dir, 'out'),
    });
    const series = [...new Set(rows.map((r) => r.series))];
    expect(series).toHaveLength(3);
    const last = (name: string) => rows.filter((r) => r.series.startsWith(name)).at(-1)!.meanLogRatio;
    // the exact toy ratio rewards low grain: guidance must raise log r at the end of the path
    expect(last('guided')).toBeGreaterThan(last('unguided'));
    expect((await sharp(plotPath).metadata()).format).toBe('png');
  }, 60_000);
});
