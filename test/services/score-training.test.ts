import type * as FsPromises from 'node:fs/promises';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it, vi } from 'vitest';
import { decodeSafetensors, encodeSafetensors } from '../../src/main/engine/io/safetensors.js';
import { trainScoreModel, type TrainScoreModelRequest } from '../../src/main/services/score-training.js';
import { translateFiles } from '../../src/main/services/translate-files.js';
import { tempDir } from '../helpers/tmp.js';

// a disk that fills up: every write into a folder named "filling" fails once the flag is set
const disk = { full: false };
vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof FsPromises>();
  const writeFile: typeof orig.writeFile = async (path, ...rest) => {
    if (disk.full && String(path).includes('filling'))
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return orig.writeFile(path, ...rest);
  };
  return { ...orig, writeFile, default: { ...orig, writeFile } };
});

const TINY = { resolution: 8, channels: 8, groups: 4, mult: [1, 2], attn: [] as number[] };

async function folder(dir: string, specs: { name: string; size: number; channels?: 1 | 2 | 3 | 4; depth?: 'uchar' | 'ushort' }[]) {
  await mkdir(dir, { recursive: true });
  for (const [i, s] of specs.entries()) {
    const ch = s.channels ?? 3;
    const img = sharp({
      create: {
        width: s.size,
        height: s.size,
        channels: ch === 2 || ch === 4 ? 4 : 3,
        background: { r: 40 * i, g: 200 - 20 * i, b: 90, alpha: 0.8 },
      },
    });
    const out = ch === 1 || ch === 2 ? img.grayscale() : img;
    await out
      .png(s.depth === 'ushort' ? { force: true } : {})
      .toColourspace(s.depth === 'ushort' ? 'rgb16' : 'srgb')
      .toFile(join(dir, s.name));
  }
}

describe('train-score-model (service)', async () => {
  const root = await tempDir();
  const base = (over: Partial<TrainScoreModelRequest>): TrainScoreModelRequest => ({
    data: [join(root, 'data')],
    outDir: join(root, 'out'),
    arch: TINY,
    batchSize: 4,
    steps: 3,
    ...over,
  });

  it('an empty folder is a clear error naming it', async () => {
    await mkdir(join(root, 'empty'), { recursive: true });
    await expect(trainScoreModel(base({ data: [join(root, 'empty')] }))).rejects.toThrow(/training data: folder ".*empty" holds no images/);
  });

  it('trains on grayscale, alpha, 16-bit and odd-sized images (resized, and says which), skips a corrupt file by name, exports a model translate loads', async () => {
    const data = join(root, 'data');
    await folder(data, [
      { name: 'a.png', size: 8 },
      { name: 'b-gray.png', size: 8, channels: 1 },
      { name: 'c-alpha.png', size: 8, channels: 4 },
      { name: 'd-16bit.png', size: 8, depth: 'ushort' },
      { name: 'e-big.png', size: 20 },
      { name: 'f.png', size: 8 },
    ]);
    await writeFile(join(data, 'g-corrupt.png'), Buffer.from('\x89PNG\r\n\x1a\n not really'));
    const warnings: string[] = [];
    const r = await trainScoreModel(base({ heldout: [join(data, 'a.png'), join(data, 'f.png')] }), { onWarning: (w) => warnings.push(w) });
    expect(warnings.some((w) => /g-corrupt\.png/.test(w))).toBe(true);
    expect(warnings.some((w) => /e-big\.png \(20×20\).*|not 8×8.*e-big\.png/.test(w))).toBe(true);
    expect(r.steps).toBe(3);
    const manifest = JSON.parse(await readFile(r.manifestPath, 'utf8')) as Record<string, unknown> & { training: Record<string, unknown> };
    expect(manifest['prediction']).toBe('eps');
    expect(manifest['validTimeRange']).toEqual([0, 1]);
    expect(manifest.training['images']).toBe(6);
    expect(manifest.training['steps']).toBe(3);
    expect(typeof manifest.training['dataSha256']).toBe('string');
    // the never-ship-noise check ran on the held-out images and its ratios are in the model's README
    expect(r.check).toHaveLength(3);
    expect(await readFile(join(root, 'out', 'README.md'), 'utf8')).toMatch(/Never ship noise[\s\S]*\| 0\.2 \|/);
    // …and in its manifest, where the studio's model card reads it: 3 steps cannot pass it
    const recorded = JSON.parse(await readFile(r.manifestPath, 'utf8')).training.denoisingCheck;
    expect(recorded.passed).toBe(r.check!.every((l) => l.ratio < 0.9));
    expect(Object.keys(recorded.ratios)).toEqual(['0.2', '0.35', '0.5']);
    const { outputs, errors } = await translateFiles({
      inputs: [join(data, 'a.png')],
      outDir: join(root, 'translated'),
      params: { steps: 2, t0: 0.5 },
      modelManifest: r.manifestPath,
    });
    expect(errors).toEqual([]);
    expect(outputs).toHaveLength(1);
  });

  it('the preview adds SDEdit translations of source images by the model in training: one row per source', async () => {
    const data = join(root, 'data');
    await folder(join(root, 'src'), [{ name: 's.png', size: 8 }]);
    const heights: number[] = [];
    for (const previewSources of [undefined, [join(root, 'src', 's.png')]]) {
      let png: Uint8Array | null = null;
      await trainScoreModel(
        base({ outDir: join(root, `prev-${heights.length}`), heldout: [join(data, 'a.png'), join(data, 'f.png')], previewSources }),
        {
          onPreview: (p) => (png = p),
        },
      );
      heights.push((await sharp(png!).metadata()).height!);
    }
    // the grid: a 28-px header, then rows of 2×8-px cells and 4-px gaps; two held-out rows, then one source row
    expect(heights).toEqual([28 + 2 * 20 + 4, 28 + 3 * 20 + 4]);
  });

  it('a t0 above the trained range is refused before any work, with the range in the message', async () => {
    const r = await trainScoreModel(base({ outDir: join(root, 'tmax'), tMax: 0.6, steps: 1 }));
    await expect(
      translateFiles({
        inputs: [join(root, 'data', 'a.png')],
        outDir: join(root, 'tmax-out'),
        params: { t0: 0.8, steps: 2 },
        modelManifest: r.manifestPath,
      }),
    ).rejects.toThrow(/t0 0\.8 is above the largest time the model .* was trained on \(0\.6\)/);
  });

  it('resume continues at the checkpoint step with its recipe; another width is refused, saying both', async () => {
    const out = join(root, 'resume');
    await trainScoreModel(base({ outDir: out, steps: 2, seed: 7, batchSize: 2 }));
    const stages: string[] = [];
    const r = await trainScoreModel(
      { data: [join(root, 'data')], outDir: out, resume: true, steps: 4 },
      { onStage: (s) => stages.push(s) },
    );
    expect(stages.some((s) => /resumed at step 2/.test(s))).toBe(true);
    expect(r.images).toBe(8); // batch 2 from the checkpoint, not the default 32
    await expect(trainScoreModel({ ...base({ outDir: out, resume: true, steps: 5 }), arch: { ...TINY, channels: 16 } })).rejects.toThrow(
      /was made with channels 8.*this run asks for channels 16/,
    );
    // the same tensors as a checkpoint of tools/train-score-model.py --precond edm (from before its noise history, its
    // levels kept in the architecture): resumed as EDM, never as ε — the weights mean something else
    const file = decodeSafetensors(await readFile(join(out, 'checkpoint.safetensors')), 'ckpt');
    const arch = JSON.parse(file.metadata['arch']!);
    const edm = join(root, 'edm');
    await mkdir(edm, { recursive: true });
    const { noise_history: _, ...legacy } = file.metadata;
    const edmFile = { ...file, metadata: { ...legacy, arch: JSON.stringify({ ...arch, precond: 'edm', p_mean: -0.4, p_std: 1.4 }) } };
    await writeFile(join(edm, 'checkpoint.safetensors'), encodeSafetensors(edmFile));
    await expect(trainScoreModel({ data: [join(root, 'data')], outDir: edm, resume: true, precond: 'eps', steps: 5 })).rejects.toThrow(
      /was trained with edm preconditioning; resume it with --precond edm/,
    );
    const edmStages: string[] = [];
    const resumed = await trainScoreModel(
      { data: [join(root, 'data')], outDir: edm, resume: true, steps: 6, noise: { pMean: -1 } },
      { onStage: (m) => edmStages.push(m) },
    );
    expect(edmStages.some((m) => /EDM preconditioning, ln σ ~ N\(-1, 1\.4²\)/.test(m))).toBe(true);
    expect(edmStages).toContain('noise levels from step 4: ln σ ~ N(-1, 1.4²)');
    const manifest = JSON.parse(await readFile(resumed.manifestPath, 'utf8'));
    expect(manifest.training.precond).toBe('edm');
    expect(manifest.training.noiseLevels).toEqual([
      { step: 0, p_mean: -0.4, p_std: 1.4 },
      { step: 4, p_mean: -1, p_std: 1.4 },
    ]);
    const saved = decodeSafetensors(await readFile(resumed.checkpointPath), 'ckpt').metadata;
    expect(JSON.parse(saved['arch']!).precond).toBe('edm');
    expect(JSON.parse(saved['noise_history']!)).toEqual(manifest.training.noiseLevels);
    // an EDM checkpoint's weights do not start an ε run (a run started from them is EDM unless asked), nor levels an ε run
    const initStages: string[] = [];
    await trainScoreModel(base({ outDir: join(root, 'init-edm'), init: resumed.checkpointPath, steps: 1 }), {
      onStage: (m) => initStages.push(m),
    });
    expect(initStages.some((m) => /EDM preconditioning/.test(m))).toBe(true);
    await expect(
      trainScoreModel(base({ outDir: join(root, 'init-eps'), init: resumed.checkpointPath, precond: 'eps', steps: 1 })),
    ).rejects.toThrow(/was trained with edm preconditioning; this run asks for eps/);
    await expect(trainScoreModel(base({ outDir: join(root, 'eps-noise'), precond: 'eps', noise: { pStd: 2 }, steps: 1 }))).rejects.toThrow(
      /apply with --precond edm only/,
    );
    // and the export translates like any ε model
    const tr = await translateFiles({
      inputs: [join(root, 'data', 'a.png')],
      outDir: join(root, 'edm-out'),
      params: { t0: 0.3, steps: 2 },
      modelManifest: resumed.manifestPath,
    });
    expect(tr.errors).toEqual([]);
    expect(tr.outputs).toHaveLength(1);
  });

  it('a cancel writes the checkpoint and the model; a disk that fills during a checkpoint keeps the previous one', async () => {
    const out = join(root, 'filling');
    const controller = new AbortController();
    const first = await trainScoreModel(
      base({ outDir: out, steps: 1000 }),
      { onProgress: () => controller.abort(), onCheckpoint: () => {} },
      controller.signal,
    );
    // progress is reported after a second: cancelled somewhere after it, well before step 1000
    expect(first.cancelled).toBe(true);
    expect(first.steps).toBeLessThan(1000);
    const before = await readFile(first.checkpointPath);
    expect(Number(decodeSafetensors(before, 'ckpt').metadata['step'])).toBe(first.steps);
    disk.full = true;
    try {
      await expect(trainScoreModel(base({ outDir: out, resume: true, steps: first.steps + 1 }))).rejects.toThrow(
        /cannot write ".*checkpoint\.safetensors": the disk is full/,
      );
    } finally {
      disk.full = false;
    }
    expect(await readFile(first.checkpointPath)).toEqual(before);
    expect((await readdir(out)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
