import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { outputFolderProblem } from '../../src/main/services/folders.js';
import { fileInManifestFolder } from '../../src/main/engine/models/manifest-files.js';
import { externalUrlAllowed, navigationAllowed, permissionAllowed, senderAllowed } from '../../src/main/app/window-guards.js';
import { tempDir } from '../helpers/tmp.js';
import { mkdir, symlink, writeFile } from 'node:fs/promises';

describe('Electron window guards', () => {
  it('openExternal: https to allow-listed hosts only', () => {
    expect(externalUrlAllowed('https://github.com/alsdudrla10/DG')).toBe(true);
    for (const bad of [
      'http://github.com/',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'smb://host/share',
      'https://evil.example/',
      'https://github.com.evil.example/',
      'https://user:pw@github.com/',
      'not a url',
    ])
      expect(externalUrlAllowed(bad)).toBe(false);
  });

  it('navigation stays on the app page: a dropped file or another site is refused', () => {
    const packaged = 'file:///opt/dg/resources/app/out/renderer/index.html';
    expect(navigationAllowed(packaged, packaged)).toBe(true);
    expect(navigationAllowed('file:///home/u/photo.png', packaged)).toBe(false);
    expect(navigationAllowed('https://evil.example/', packaged)).toBe(false);
    const dev = 'http://localhost:5173/';
    expect(navigationAllowed('http://localhost:5173/#gallery', dev)).toBe(true);
    expect(navigationAllowed('http://localhost:5174/', dev)).toBe(false);
  });

  it('IPC only from the top frame of the app page; no permission is ever granted', () => {
    const app = 'file:///opt/dg/out/renderer/index.html';
    expect(senderAllowed(app, true, app)).toBe(true);
    expect(senderAllowed(app, false, app)).toBe(false);
    expect(senderAllowed('https://evil.example/', true, app)).toBe(false);
    expect(senderAllowed(undefined, true, app)).toBe(false);
    for (const p of ['media', 'geolocation', 'notifications', 'clipboard-read', 'openExternal']) expect(permissionAllowed(p)).toBe(false);
  });
});

describe('confinement', async () => {
  const dir = await tempDir();

  it('an output folder must be absolute, inside an allowed root, and not a system folder', () => {
    const roots = [dir];
    expect(outputFolderProblem(join(dir, 'out', 'new'), roots)).toBeNull();
    expect(outputFolderProblem(join(homedir(), 'dg-out'), [homedir()])).toBeNull();
    expect(outputFolderProblem('relative', roots)).toMatch(/absolute path/);
    expect(outputFolderProblem('/proc/x', roots)).toMatch(/system folder/);
    expect(outputFolderProblem(join(dir, '..', 'elsewhere'), roots)).toMatch(/outside the folders/);
    expect(outputFolderProblem('/', ['/'])).toMatch(/outside the folders/);
    // the home's hidden folders hold keys and start-up files: refused, unless the studio's own data folder is there
    const h = homedir();
    expect(outputFolderProblem(join(h, '.ssh'), [h])).toMatch(/inside the hidden folder ~\/\.ssh, which holds settings and keys/);
    expect(outputFolderProblem(join(h, '.config', 'autostart'), [h])).toMatch(/hidden folder ~\/\.config/);
    const data = join(h, '.local', 'share', 'dg-studio');
    expect(outputFolderProblem(join(data, 'outputs'), [data, h])).toBeNull();
    expect(outputFolderProblem(join(h, '.local', 'bin'), [data, h])).toMatch(/hidden folder ~\/\.local/);
  });

  it('an output folder reached through a link out of the root is refused', async () => {
    await mkdir(join(dir, 'inside'), { recursive: true });
    await symlink('/tmp', join(dir, 'inside', 'link'));
    expect(outputFolderProblem(join(dir, 'inside', 'link', 'x'), [join(dir, 'inside')])).toMatch(/outside the folders/);
  });

  it('a manifest names only files in its folder, with one message for missing and existing outside files', async () => {
    await mkdir(join(dir, 'm'), { recursive: true });
    await writeFile(join(dir, 'm', 'model.onnx'), 'x');
    await writeFile(join(dir, 'outside.onnx'), 'x');
    await symlink(join(dir, 'outside.onnx'), join(dir, 'm', 'sneaky.onnx'));
    expect(fileInManifestFolder(join(dir, 'm'), 'model.onnx', 'onnx')).toBe(join(dir, 'm', 'model.onnx'));
    const msg = (rel: string) => {
      try {
        fileInManifestFolder(join(dir, 'm'), rel, 'onnx');
        return 'accepted';
      } catch (e) {
        return (e as Error).message.replace(rel, '<rel>');
      }
    };
    const outside = [join(dir, 'outside.onnx'), '../outside.onnx', '../missing.onnx', '/etc/passwd', 'sneaky.onnx'].map(msg);
    expect(outside.every((m) => m !== 'accepted')).toBe(true);
    expect(new Set(outside).size).toBe(1);
  });
});
