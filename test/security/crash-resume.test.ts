/**
 * Issue 31, finding 3: a crash cannot duplicate an output. The CLI is SIGKILLed the moment a PNG appears
 * in its output folder (between the PNG and its gallery row, where a kill used to leave a PNG that the
 * resumed run wrote again as "…-1.png"), five times in a row, resuming each time; then the run finishes.
 * Every source is in the folder exactly once, every PNG has its sidecar, and the gallery holds each once.
 */
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Gallery } from '../../src/main/services/gallery.js';
import { tempDir } from '../helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');
const N = 8;

/** Run the CLI; with `killOnPng`, SIGKILL it as soon as a PNG not in `seen` lands in `out`. */
function runCli(args: string[], out: string, killOnPng: Set<string> | null): Promise<{ code: number | null; killed: boolean }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), ...args], {
      cwd: root,
      stdio: 'ignore',
    });
    let killed = false;
    const watcher = killOnPng
      ? watch(out, (_e, name) => {
          if (!killed && name && name.endsWith('.png') && !name.startsWith('.') && !killOnPng.has(name)) {
            killed = true;
            child.kill('SIGKILL');
          }
        })
      : null;
    child.on('exit', (code) => {
      watcher?.close();
      resolveRun({ code, killed });
    });
  });
}

describe('a crash cannot duplicate an output', () => {
  it('killed right after a PNG appears, five times, then resumed to the end: each source once, with its sidecar, in folder and gallery', async () => {
    const dir = await tempDir();
    const [src, out, gallery] = [join(dir, 'src'), join(dir, 'out'), join(dir, 'gallery')];
    await mkdir(src);
    await mkdir(out);
    for (let i = 0; i < N; i++)
      await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 25 * i, g: 90, b: 200 - 20 * i } } })
        .png()
        .toFile(join(src, `s${i}.png`));
    const args = [src, '--steps', '60', '--batch-size', '1', '--no-discriminator', '--out', out, '--gallery', gallery, '--no-progress'];
    let kills = 0;
    let first = true;
    for (let round = 0; round < 5; round++) {
      const seen = new Set((await readdir(out)).filter((n) => n.endsWith('.png')));
      const r = await runCli(first ? ['translate', ...args] : ['translate', ...args, '--resume-run', '1'], out, seen);
      first = false;
      if (r.killed) kills++;
      else break; // it finished before a new PNG could be caught
    }
    expect(kills).toBeGreaterThanOrEqual(3);
    const last = await runCli(['translate', ...args, '--resume-run', '1'], out, null);
    expect(last.code).toBe(0);
    const files = await readdir(out);
    const pngs = files.filter((n) => n.endsWith('.png'));
    expect(pngs.filter((n) => /-\d+-\d+\.png$/.test(n))).toEqual([]); // no "…-1.png" second copies
    expect(pngs).toHaveLength(N);
    for (const p of pngs) expect([p, files.includes(p.replace(/\.png$/, '.json'))]).toEqual([p, true]); // no orphan
    expect(files.filter((n) => n.startsWith('.') || n.endsWith('.tmp'))).toEqual([]);
    const g = await Gallery.open(gallery);
    try {
      const rows = g.search({ limit: 1000 });
      expect(rows).toHaveLength(N);
      expect(new Set(rows.map((r) => r.sourcePath)).size).toBe(N);
    } finally {
      g.db.close();
    }
  }, 240_000);
});
