import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { joinParts } from '../../tools/bundle-model.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const fixture = join(root, 'test', 'fixtures', 'torch-unet-tiny');

describe('tools/bundle-model.ts', () => {
  it('joins pieces fetched from the GPU machine and checks their sha256', async () => {
    const dir = await tempDir();
    const bytes = await readFile(join(fixture, 'model.onnx'));
    const cut = [0, 100_000, 250_000, bytes.length];
    for (let i = 0; i < 3; i++) await writeFile(join(dir, `part-a${'abc'[i]}`), bytes.subarray(cut[i], cut[i + 1]));
    await writeFile(join(dir, 'model.onnx.sha256'), `${createHash('sha256').update(bytes).digest('hex')}  model.onnx\n`);
    await writeFile(join(dir, 'manifest.json'), await readFile(join(fixture, 'manifest.json')));
    // the device tool's files are read-only: joining must not write there (checked below; chmod
    // would not stop root, who runs CI)
    const joined = await joinParts(dir);
    expect(joined).not.toBe(dir);
    expect(Buffer.compare(await readFile(join(joined, 'model.onnx')), bytes)).toBe(0);
    expect(existsSync(join(joined, 'manifest.json'))).toBe(true);
    expect(existsSync(join(dir, 'model.onnx'))).toBe(false);
    expect(await joinParts(fixture)).toBe(fixture);

    const broken = await tempDir();
    await writeFile(join(broken, 'part-aa'), bytes.subarray(0, 100_000));
    await writeFile(join(broken, 'part-ac'), bytes.subarray(250_000));
    await writeFile(join(broken, 'model.onnx.sha256'), createHash('sha256').update(bytes).digest('hex'));
    await expect(joinParts(broken)).rejects.toThrow(/part-aa\+part-ac has sha256 .* a piece is missing or damaged/);
  });

  it('refuses a model that does not denoise better than the linear baseline (an untrained U-Net)', async () => {
    const resources = await tempDir();
    await cp(join(root, 'test', 'fixtures', 'toy-resources'), resources, { recursive: true, dereference: true });
    const check = await tempDir();
    for (let i = 0; i < 4; i++)
      await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 60 * i, g: 200 - 40 * i, b: 90 } } })
        .png()
        .toFile(join(check, `c${i}.png`));
    const err = await run('npx', ['tsx', join(root, 'tools', 'bundle-model.ts'), '--score', fixture, '--check', check, '--default'], {
      cwd: root,
      env: { ...process.env, DG_STUDIO_RESOURCES: resources },
    }).then(
      () => null,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toMatch(/t0 0\.5 \(σ_ve [\d.]+\): model MSE [\d.]+, linear baseline [\d.]+, ratio [\d.]+/);
    expect(err?.stderr).toMatch(/refusing to bundle .*torch-unet-tiny.*manifest\.json: it does not denoise held-out images/);
    // nothing changed: the defaults still name the toy
    expect(JSON.parse(await readFile(join(resources, 'models', 'defaults.json'), 'utf8')).scoreModel).toBe('toy-gaussian-64/manifest.json');
  }, 60_000);
});
