import type * as FsPromises from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it, vi } from 'vitest';
import { Gallery } from '../../src/main/services/gallery.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { translateFiles } from '../../src/main/services/translate-files.js';
import { tempDir } from '../helpers/tmp.js';

// a disk that is full for one folder: every write there fails with ENOSPC
vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof FsPromises>();
  const writeFile: typeof orig.writeFile = async (path, ...rest) => {
    if (String(path).includes('full-disk')) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return orig.writeFile(path, ...rest);
  };
  return { ...orig, writeFile, default: { ...orig, writeFile } };
});

describe('a full disk', async () => {
  const dir = await tempDir();

  it('is a clear error naming the file, leaves no temp file, and loses nothing already stored', async () => {
    const src = join(dir, 'photo.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#884422' } })
      .png()
      .toFile(src);
    const gallery = await Gallery.open(join(dir, 'gallery'));
    const first = await translateFiles({
      inputs: [src],
      outDir: join(dir, 'ok'),
      params: { steps: 1 },
      modelManifest: bundledDefaults().scoreModel,
      gallery,
    });
    const before = gallery.search({ limit: 10 }).map((r) => r.id);
    await expect(
      translateFiles({
        inputs: [src],
        outDir: join(dir, 'full-disk'),
        params: { steps: 1, seed: 5 },
        modelManifest: bundledDefaults().scoreModel,
        gallery,
      }),
    ).rejects.toThrow(/cannot write ".*full-disk.*photo-t0\.5-w0-5\.png": the disk is full/);
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(join(dir, 'full-disk'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(gallery.search({ limit: 10 }).map((r) => r.id)).toEqual(before);
    expect((await readFile(first.outputs[0]!.output)).length).toBeGreaterThan(0);
    expect(gallery.run(first.outputs[0]!.runId!)!.status).toBe('done');
    gallery.db.close();
  });
});
