/**
 * Issue 31, findings 1 and 4: every file the back end writes is named by it. An uploaded image named
 * "../"×20 + "some/dir/evil.png" is translated and exported: nothing lands outside the export folder and
 * no existing file elsewhere is overwritten. A long non-ASCII name (80 CJK characters = 240 bytes) does
 * not fail the batch with ENAMETOOLONG.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { StudioBackend, withoutServerPaths } from '../../src/main/backend/backend.js';
import { fileInside, safeFileStem } from '../../src/main/services/folders.js';
import { untilJob } from '../helpers/jobs.js';
import { tempDir } from '../helpers/tmp.js';

describe('file names the server writes', () => {
  it('safeFileStem keeps only a bounded last component; fileInside refuses what leaves its folder', () => {
    expect(safeFileStem('../'.repeat(20) + 'some/dir/evil.png')).toBe('evil.png');
    expect(safeFileStem('..\\..\\win\\evil')).toBe('evil');
    expect(safeFileStem('...')).toBe('image');
    expect(safeFileStem('a\u0000b:c*?.png')).toBe('a_b_c__.png');
    const cjk = '漢'.repeat(80); // 240 bytes
    const cut = safeFileStem(cjk);
    expect(new TextEncoder().encode(cut).length).toBeLessThanOrEqual(150);
    expect(cut).toBe('漢'.repeat(50)); // cut on a character boundary
    expect(() => fileInside('/tmp/x', '../y.png')).toThrow(/outside/);
    expect(fileInside('/tmp/x', 'y.png')).toBe('/tmp/x/y.png');
  });

  it('an upload named with ../ is translated and exported inside the export folder, overwriting nothing outside', async () => {
    const home = await tempDir();
    const backend = await StudioBackend.create({ mode: 'server', dataDir: home });
    try {
      // a victim file where the traversal would land (exports go to <home>/outputs/export-…/)
      const victimDir = join(home, 'some', 'dir');
      await mkdir(victimDir, { recursive: true });
      for (const name of ['evil-1.png', 'evil-2.png', 'evil.png']) await writeFile(join(victimDir, name), 'victim');
      const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#884422' } })
        .png()
        .toBuffer();
      const cjk = '漢'.repeat(80) + '.png';
      const added = (await backend.dispatch('addSources', [
        {
          files: [
            { name: '../'.repeat(20) + 'some/dir/evil.png', data: new Uint8Array(png) },
            { name: cjk, data: new Uint8Array(await sharp(png).negate().png().toBuffer()) },
          ],
        },
      ])) as { sources: { id: string }[]; errors: unknown[] };
      expect(added.errors).toEqual([]);
      const { jobId } = (await backend.dispatch('translate', [
        { sources: added.sources.map((s) => s.id), params: { steps: 2, dgWeight: 0 }, model: null, discriminator: null },
      ])) as { jobId: number };
      const job = await untilJob(backend, jobId);
      expect([job.state, job.error]).toEqual(['done', null]);
      const ids = job.kind === 'translate' && job.result ? job.result.galleryIds : [];
      expect(ids).toHaveLength(2); // the 240-byte name did not fail the batch
      const { folder, files } = (await backend.dispatch('galleryExport', [ids])) as { folder: string; files: number };
      expect(files).toBe(2);
      const names = await readdir(folder);
      expect(names.filter((n) => n.endsWith('.png')).sort()).toEqual([`${'漢'.repeat(50)}-${ids[1]}.png`, `evil-${ids[0]}.png`].sort());
      for (const name of ['evil-1.png', 'evil-2.png', 'evil.png']) expect(await readFile(join(victimDir, name), 'utf8')).toBe('victim');
      expect((await readdir(victimDir)).sort()).toEqual(['evil-1.png', 'evil-2.png', 'evil.png']); // nothing added there
      expect(existsSync(join(home, 'outputs', 'some'))).toBe(false);
      // the sidecar keeps the name the user gave (a name, not a path to follow)
      const sidecar = JSON.parse(await readFile(join(folder, `evil-${ids[0]}.json`), 'utf8'));
      expect(sidecar.sourceName).toBe('../'.repeat(20) + 'some/dir/evil.png');
    } finally {
      await backend.close();
    }
  });
});

describe('server-mode errors name folders instead of spelling them out', () => {
  it('the data folder and the home folder become "<data folder>" and "~"', () => {
    expect(withoutServerPaths('cannot write "/srv/dg/data/gallery/tmp/x.png": the disk is full', '/srv/dg/data', '/home/ada')).toBe(
      'cannot write "<data folder>/gallery/tmp/x.png": the disk is full',
    );
    expect(withoutServerPaths('"/home/ada/.ssh" is a hidden folder of your home', '/srv/dg/data', '/home/ada')).toBe(
      '"~/.ssh" is a hidden folder of your home',
    );
    expect(withoutServerPaths('no path here', '/srv/dg/data', '/')).toBe('no path here');
  });

  it('a refused output folder under home answers with "~", in server mode only', async () => {
    const dir = await tempDir();
    const served = await StudioBackend.create({ mode: 'server', dataDir: join(dir, 'served') });
    const desktop = await StudioBackend.create({ mode: 'electron', dataDir: join(dir, 'desktop') });
    try {
      const ask = (b: StudioBackend) =>
        b.dispatch('setSettings', [{ outputDir: join(homedir(), '.ssh') }]).then(
          () => '',
          (e: Error) => e.message,
        );
      const [fromServer, fromDesktop] = [await ask(served), await ask(desktop)];
      expect(fromServer).toMatch(/~\/\.ssh/);
      expect(fromServer).not.toContain(homedir());
      expect(fromDesktop).toContain(join(homedir(), '.ssh'));
    } finally {
      await served.close();
      await desktop.close();
    }
  });
});
