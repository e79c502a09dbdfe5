import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { folderBytes, recordLicense } from '../../tools/bundle-model.js';
import { tempDir } from '../helpers/tmp.js';

// the app's own resources/ (the tests otherwise run against the toy fixture, vitest.config.ts)
const resources = join(import.meta.dirname, '..', '..', 'resources');
const resourcesDir = () => resources;

describe('the bundled resources', () => {
  it('stay within the 60 MB budget', async () => {
    expect(await folderBytes(resourcesDir())).toBeLessThanOrEqual(60 * 1024 * 1024);
  });

  it('every bundled model folder and sample set has its license recorded in resources/LICENSES.md', async () => {
    const licenses = await readFile(join(resourcesDir(), 'LICENSES.md'), 'utf8');
    const models = (await readdir(join(resourcesDir(), 'models'), { withFileTypes: true })).filter((e) => e.isDirectory());
    expect(models.length).toBeGreaterThan(0);
    for (const m of models) expect(licenses, `models/${m.name}/ is not in LICENSES.md`).toContain(`\`models/${m.name}/\``);
    const samples = await readdir(join(resourcesDir(), 'samples'));
    expect(samples.filter((n) => n.startsWith('twemoji-')).length).toBeGreaterThan(0);
    expect(licenses).toMatch(/`samples\/twemoji-\*\.png`.*CC-BY 4\.0/);
  });

  it('bundling adds a license row once, inside the table', async () => {
    const dir = await tempDir();
    await cp(join(resourcesDir(), 'LICENSES.md'), join(dir, 'LICENSES.md'));
    await recordLicense(dir, 'noto-emoji-unet', 'score model', 'trained here', 'weights: MIT');
    await recordLicense(dir, 'noto-emoji-unet', 'score model', 'trained here', 'weights: MIT');
    const text = await readFile(join(dir, 'LICENSES.md'), 'utf8');
    expect(text.split('`models/noto-emoji-unet/`').length).toBe(2);
    const lines = text.split('\n');
    const row = lines.findIndex((l) => l.includes('`models/noto-emoji-unet/`'));
    expect(lines[row - 1]!.startsWith('|')).toBe(true);
    expect(row).toBeLessThan(lines.findIndex((l) => l.startsWith('## Attribution')));
  });
});
