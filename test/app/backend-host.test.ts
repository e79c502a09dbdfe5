import { fork } from 'node:child_process';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendClient } from '../../src/main/backend/client.js';
import type { StudioEvent } from '../../src/shared/api.js';
import { tempDir } from '../helpers/tmp.js';

describe('the back end in its own process (what Electron runs as a utilityProcess)', async () => {
  const child = fork(join(import.meta.dirname, '../../src/main/backend/host.ts'), [], {
    execArgv: ['--import', 'tsx'],
    serialization: 'advanced',
    env: { ...process.env, DG_STUDIO_DATA: await tempDir(), DG_STUDIO_MODE: 'electron' },
  });
  const client = new BackendClient({ postMessage: (m) => child.send(m as object), onMessage: (l) => child.on('message', l) });
  afterAll(() => {
    child.kill();
  });

  it('answers calls, streams job events, and relays validation errors', async () => {
    await client.ready;
    expect(await client.call('getInfo', [])).toMatchObject({ mode: 'electron' });
    await expect(client.call('translate', [{ sources: ['nope'], params: {} }])).rejects.toThrow(/not a source id/);
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } })
      .png()
      .toBuffer();
    const { sources } = (await client.call('addSources', [{ files: [{ name: 'a.png', data: new Uint8Array(png) }] }])) as {
      sources: { id: string }[];
    };
    const events: StudioEvent[] = [];
    client.onEvent((e) => events.push(e));
    const { jobId } = (await client.call('translate', [{ sources: [sources[0]!.id], params: { steps: 3 } }])) as { jobId: number };
    for (let i = 0; i < 200 && !events.some((e) => e.type === 'job' && e.job.id === jobId && e.job.state === 'done'); i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(events.some((e) => e.type === 'job' && e.job.state === 'running')).toBe(true);
    expect(events.some((e) => e.type === 'job' && e.job.state === 'done')).toBe(true);
    const thumb = (await client.call('$resolveFile', ['source', sources[0]!.id])) as string;
    expect(thumb).toMatch(/inbox/);
  }, 60_000);
});
