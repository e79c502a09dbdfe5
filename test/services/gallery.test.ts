import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { TranslateParamsSchema } from '../../src/shared/params.js';
import { Gallery, parametersFromPng } from '../../src/main/services/gallery.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { translateFiles } from '../../src/main/services/translate-files.js';
import { tempDir } from '../helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');
const png = (r: number) =>
  sharp({ create: { width: 8, height: 8, channels: 3, background: { r, g: 10, b: 10 } } })
    .png()
    .toBuffer();
const run = (g: Gallery, t0 = 0.5, w = 1, model = 'm') =>
  g.startRun({
    params: TranslateParamsSchema.parse({ t0, dgWeight: w }),
    inputs: [],
    model: { name: model, sha256: 'x' },
    discriminator: null,
    engineVersion: '0',
  });

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const p of await readdir(join(dir, 'objects'))) n += (await readdir(join(dir, 'objects', p))).length;
  return n;
}

describe('gallery store', async () => {
  const dir = await tempDir();

  it('migrates by user_version and refuses a newer schema', async () => {
    const g = await Gallery.open(join(dir, 'm'));
    expect(g.db.pragma('user_version', { simple: true })).toBe(4);
    expect(g.db.pragma('journal_mode', { simple: true })).toBe('wal');
    g.db.pragma('user_version = 99');
    g.db.close();
    await expect(Gallery.open(join(dir, 'm'))).rejects.toThrow(/written by a newer DG Studio \(schema 99\)/);
  });

  it("finds an output by its source's original file name though the file is stored under a digest; export names it so", async () => {
    const g = await Gallery.open(join(dir, 'names'));
    const r = run(g, 0.5, 1, 'noto');
    const id = await g.addOutput(r, {
      png: await png(7),
      sourcePath: '/data/inbox/3f9a0c.png',
      sourceName: 'twemoji-1f427-penguin.png',
      seed: 3,
    });
    await g.addOutput(r, { png: await png(8), sourcePath: '/data/inbox/77aa01.png', seed: 4 });
    expect(g.search({ text: 'penguin' }).map((o) => o.id)).toEqual([id]);
    expect(g.get(id)!.sourceName).toBe('twemoji-1f427-penguin.png');
    const [file] = await g.export([id], join(dir, 'names-export'));
    expect(file).toMatch(/twemoji-1f427-penguin-\d+\.png$/);
    const sidecar = await readFile(file!.replace(/\.png$/, '.json'), 'utf8');
    expect(sidecar).not.toContain('/data/inbox');
    g.db.close();
  });

  it('stores content-addressed files with thumbnails, filters, tags and pages', async () => {
    const g = await Gallery.open(join(dir, 's'));
    const [a, b] = [run(g, 0.3, 0, 'noto'), run(g, 0.6, 2, 'other')];
    const ids: number[] = [];
    for (let i = 0; i < 30; i++) ids.push(await g.addOutput(i % 2 ? a : b, { png: await png(i), sourcePath: `/in/cat ${i}.png`, seed: i }));
    const same = await g.addOutput(a, { png: await png(0), sourcePath: '/in/dup.png', seed: 99 });
    expect(g.get(same)!.sha256).toBe(g.get(ids[0]!)!.sha256); // one file for identical bytes
    expect(await countFiles(join(dir, 's'))).toBe(30);
    expect(existsSync(g.thumbPath(g.get(ids[1]!)!.sha256!))).toBe(true);
    g.addTag(ids[3]!, 'keep');
    g.setFavourite(ids[5]!, true);
    g.setNote(ids[7]!, 'a fine orange fox');
    expect(g.search({ model: 'noto' }).every((r) => r.modelName === 'noto')).toBe(true);
    expect(g.search({ t0Min: 0.5 }).every((r) => r.t0 >= 0.5)).toBe(true);
    expect(g.search({ dgWeight: 2 }).length).toBe(15);
    expect(g.search({ tag: 'keep' }).map((r) => r.id)).toEqual([ids[3]]);
    expect(g.search({ favourite: true }).map((r) => r.id)).toEqual([ids[5]]);
    expect(g.search({ text: 'orange fox' }).map((r) => r.id)).toEqual([ids[7]]);
    expect(g.search({ text: '100%' })).toEqual([]); // LIKE wildcards are escaped
    // keyset pages cover everything once
    const seen: number[] = [];
    let page = g.search({ limit: 7 });
    while (page.length) {
      seen.push(...page.map((r) => r.id));
      const last = page.at(-1)!;
      page = g.search({ limit: 7, after: { createdAt: last.createdAt, id: last.id } });
    }
    expect(new Set(seen).size).toBe(31);
    g.db.close();
  });

  it('delete really deletes rows and unreferenced files; export writes PNG + JSON', async () => {
    const g = await Gallery.open(join(dir, 'd'));
    const r = run(g);
    const x = await g.addOutput(r, { png: await png(1), sourcePath: '/in/a.png', seed: 1 });
    const y = await g.addOutput(r, { png: await png(2), sourcePath: '/in/b.png', seed: 2 });
    const files = await g.export([x, y], join(dir, 'export'));
    expect(files).toHaveLength(2);
    expect(existsSync(files[0]!.replace(/\.png$/, '.json'))).toBe(true);
    const path = g.objectPath(g.get(x)!.sha256!);
    expect(await g.delete([x])).toBe(1);
    expect(existsSync(path)).toBe(false);
    expect(g.get(x)).toBeUndefined();
    expect(g.get(y)).toBeDefined();
    g.db.close();
  });

  it('reconciles both ways on open: orphan files go, rows without files go, running runs are interrupted', async () => {
    const gdir = join(dir, 'r');
    let g = await Gallery.open(gdir);
    const r = run(g);
    const keep = await g.addOutput(r, { png: await png(3), sourcePath: '/in/a.png', seed: 1 });
    const lost = await g.addOutput(r, { png: await png(4), sourcePath: '/in/b.png', seed: 2 });
    const { rm } = await import('node:fs/promises');
    await rm(g.objectPath(g.get(lost)!.sha256!));
    await mkdir(join(gdir, 'objects', 'ff'), { recursive: true });
    await writeFile(join(gdir, 'objects', 'ff', 'deadbeef.png'), 'half-written');
    await writeFile(join(gdir, 'tmp', 'x.tmp'), 'partial');
    g.db.close();
    g = await Gallery.open(gdir);
    expect(g.get(keep)).toBeDefined();
    expect(g.get(lost)).toBeUndefined();
    expect(existsSync(join(gdir, 'objects', 'ff', 'deadbeef.png'))).toBe(false);
    expect(await readdir(join(gdir, 'tmp'))).toEqual([]);
    expect(g.run(r)!.status).toBe('interrupted');
    g.db.close();
  });

  it('reuses parameters from a PNG the studio wrote, and names a PNG without them', async () => {
    const out = join(dir, 'reuse');
    const src = join(dir, 'reuse-src.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#446688' } })
      .png()
      .toFile(src);
    const { outputs } = await translateFiles({
      inputs: [src],
      outDir: out,
      params: { steps: 2, t0: 0.35, seed: 77 },
      modelManifest: bundledDefaults().scoreModel,
    });
    const p = await parametersFromPng(outputs[0]!.output);
    expect([p.t0, p.seed, p.steps]).toEqual([0.35, 77, 2]);
    await expect(parametersFromPng(src)).rejects.toThrow(/"reuse-src.png" has no DG Studio parameters/);
  });
});

describe('crash safety and resume', async () => {
  const dir = await tempDir();
  const inputs = join(dir, 'in');
  await mkdir(inputs);
  for (let i = 0; i < 24; i++)
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 10 * i, g: 50, b: 90 } } })
      .png()
      .toFile(join(inputs, `img ${String(i).padStart(2, '0')}.png`));
  const gdir = join(dir, 'gallery');

  it('a process killed with SIGKILL mid-batch leaves no broken row and no orphan file; resume finishes the run', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(root, 'src/main/cli/index.ts'),
        'translate',
        inputs,
        '--steps',
        '40',
        '--batch-size',
        '1',
        '--gallery',
        gdir,
        '--out',
        join(dir, 'out'),
        '--json',
        '--no-progress',
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let lines = 0;
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        lines += d.toString().split('\n').filter(Boolean).length;
        if (lines >= 3) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => resolve());
    });
    await new Promise((r) => child.once('exit', r).once('close', r));
    const g = await Gallery.open(gdir);
    const rows = g.search({ limit: 500, includeErrors: true });
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.length).toBeLessThan(24);
    for (const r of rows) expect(existsSync(g.objectPath(r.sha256!))).toBe(true);
    expect(await countFiles(gdir)).toBe(new Set(rows.map((r) => r.sha256)).size);
    const runId = rows[0]!.runId;
    expect(g.run(runId)!.status).toBe('interrupted');
    // resume: only the missing images are made
    const run = g.run(runId)!;
    const { outputs } = await translateFiles({
      inputs: run.inputs,
      outDir: join(dir, 'out2'),
      params: run.params,
      modelManifest: bundledDefaults().scoreModel,
      gallery: g,
      resumeRunId: runId,
    });
    expect(outputs.length).toBe(24 - rows.length);
    const all = g.search({ limit: 500 });
    expect(all).toHaveLength(24);
    expect(new Set(all.map((r) => r.sourcePath)).size).toBe(24);
    expect(g.run(runId)!.status).toBe('done');
    g.db.close();
  }, 120_000);
});
