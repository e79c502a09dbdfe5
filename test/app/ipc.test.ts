import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHANNELS } from '../../src/shared/channels.js';
import { ENGINE_VERSION } from '../../src/shared/version.js';
import { createHandlers, PayloadError } from '../../src/main/ipc.js';
import { tempDir } from '../helpers/tmp.js';

describe('IPC handlers validate every payload (no Electron needed)', async () => {
  const handlers = createHandlers({ outDir: await tempDir() });

  it('answers getInfo with the engine version and bundled defaults', async () => {
    const info = await handlers[CHANNELS.getInfo]();
    expect(info.engineVersion).toBe(ENGINE_VERSION);
    expect(info.defaultModel).toMatch(/manifest\.json$/);
  });
  it('rejects extra arguments, wrong types and out-of-range parameters', async () => {
    await expect(handlers[CHANNELS.getInfo]('surprise')).rejects.toBeInstanceOf(PayloadError);
    await expect(handlers[CHANNELS.translate]({ inputs: 'a.png', params: {} })).rejects.toThrow(/inputs: /);
    await expect(handlers[CHANNELS.translate]({ inputs: ['a.png'], params: { t0: 3 } })).rejects.toThrow(/t0 must be in \(0, 1\]/);
    await expect(handlers[CHANNELS.translate]({ inputs: ['a.png'], params: { sampler: 'rm -rf' } })).rejects.toThrow(/sampler/);
  });
  it('the engine version matches package.json', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8'));
    expect(ENGINE_VERSION).toBe(pkg.version);
  });
});
