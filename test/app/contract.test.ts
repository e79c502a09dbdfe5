/**
 * One contract: the API table in src/shared/api.ts is the whole surface. The method list, the IPC
 * channels, the Electron preload bridge, the renderer's HTTP client and the back end are derived from
 * it; this checks that each of them carries exactly the table's methods, arguments unchanged.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { StudioBackend } from '../../src/main/backend/backend.js';
import { API, apiOverTransport, channelOf, METHODS, type ApiMethod } from '../../src/shared/api.js';
import { tempDir } from '../helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');

describe('the API table is the one contract', () => {
  it('the method list is the table, in order, and each method has an argument tuple schema', () => {
    expect(METHODS).toEqual(Object.keys(API));
    expect(METHODS.length).toBeGreaterThan(20);
    for (const m of METHODS) expect([m, API[m].args.safeParse({}).success]).toEqual([m, false]); // a tuple, not an object
  });

  it('the back end implements every method of the table and nothing else is dispatchable', async () => {
    const backend = await StudioBackend.create({ mode: 'server', dataDir: await tempDir() });
    try {
      for (const m of METHODS) expect([m, typeof (backend as unknown as Record<string, unknown>)[m]]).toEqual([m, 'function']);
      // a public method of the class that is not in the table cannot be reached through dispatch
      await expect(backend.dispatch('allowedRoots', [])).rejects.toThrow(/unknown method "allowedRoots"/);
      await expect(backend.dispatch('close', [])).rejects.toThrow(/unknown method "close"/);
    } finally {
      await backend.close();
    }
  });

  it('a transport built from the table forwards each method by name with its arguments unchanged', async () => {
    const calls: [ApiMethod, unknown[]][] = [];
    const api = apiOverTransport(async (m, args) => {
      calls.push([m, args]);
      return m;
    });
    expect(Object.keys(api).sort()).toEqual([...METHODS].sort());
    expect(await api.judge(3, 'ann', 7, 'tie')).toBe('judge');
    expect(await api.getInfo()).toBe('getInfo');
    expect(calls).toEqual([
      ['judge', [3, 'ann', 7, 'tie']],
      ['getInfo', []],
    ]);
  });

  it('the Electron preload exposes exactly the table over one IPC channel per method, plus the event stream', async () => {
    const invoke = vi.fn(async (..._a: unknown[]) => 'ok');
    const exposed: Record<string, unknown> = {};
    vi.doMock('electron', () => ({
      contextBridge: { exposeInMainWorld: (key: string, value: unknown) => (exposed[key] = value) },
      ipcRenderer: { invoke, on: vi.fn(), removeListener: vi.fn() },
    }));
    await import('../../src/preload/index.js');
    const bridge = exposed['dgStudio'] as Record<string, (...a: unknown[]) => Promise<unknown>>;
    expect(Object.keys(bridge).sort()).toEqual([...METHODS, 'onEvent'].sort());
    await bridge['galleryDelete']!([1, 2]);
    expect(invoke).toHaveBeenCalledWith(channelOf('galleryDelete'), [1, 2]);
    vi.doUnmock('electron');
  });

  it('no file outside the contract spells the method list out again (the renderer, preload and app import it)', async () => {
    for (const f of ['src/preload/index.ts', 'src/renderer/src/lib/client.ts', 'src/main/app/index.ts']) {
      const text = await readFile(join(root, f), 'utf8');
      expect([f, /'(getInfo|listModels|gallerySearch)'/.test(text)]).toEqual([f, false]);
      expect([f, /as unknown as/.test(text)]).toEqual([f, false]);
    }
  });
});
