/**
 * Issue 31, finding 3: a run a stopped server left unfinished is offered and resumed. A translation runs in
 * one back end; its run is then marked as a killed server leaves it (interrupted, the last image's row
 * missing), and a new back end on the same data folder lists it with how far it got and finishes it.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { StudioBackend } from '../../src/main/backend/backend.js';
import type { InterruptedRun } from '../../src/shared/api.js';
import { untilJob } from '../helpers/jobs.js';
import { tempDir } from '../helpers/tmp.js';

describe('resuming an interrupted run from the studio', () => {
  it('lists the run with how far it got, and Resume translates only what is missing', async () => {
    const home = await tempDir();
    const first = await StudioBackend.create({ mode: 'server', dataDir: home });
    const files = await Promise.all(
      [0, 1, 2].map(async (i) => ({
        name: `p${i}.png`,
        data: new Uint8Array(
          await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 70 * i, g: 100, b: 50 } } })
            .png()
            .toBuffer(),
        ),
      })),
    );
    const { sources } = (await first.dispatch('addSources', [{ files }])) as { sources: { id: string }[] };
    const { jobId } = (await first.dispatch('translate', [
      { sources: sources.map((s) => s.id), params: { steps: 2, dgWeight: 0 }, model: null, discriminator: null },
    ])) as { jobId: number };
    expect((await untilJob(first, jobId)).state).toBe('done');
    // as a killed server leaves it: the run still "running" (reconciled to interrupted on the next start), one row missing
    const last = Math.max(...first.gallery.search({ limit: 10 }).map((r) => r.id));
    first.gallery.db.prepare('DELETE FROM outputs WHERE id = ?').run(last);
    first.gallery.db.prepare("UPDATE runs SET status = 'running'").run();
    await first.close();

    const second = await StudioBackend.create({ mode: 'server', dataDir: home });
    try {
      const runs = (await second.dispatch('listInterruptedRuns', [])) as InterruptedRun[];
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ total: 3, done: 2, t0: 0.5, dgWeight: 0 });
      const resumed = (await second.dispatch('resumeRun', [runs[0]!.id])) as { jobId: number };
      const job = await untilJob(second, resumed.jobId);
      expect([job.state, job.error]).toEqual(['done', null]);
      expect(job.kind === 'translate' && job.result?.galleryIds).toHaveLength(1); // only the missing one
      expect(second.gallery.search({ limit: 10 })).toHaveLength(3);
      expect(await second.dispatch('listInterruptedRuns', [])).toEqual([]);
      await expect(second.dispatch('resumeRun', [runs[0]!.id])).rejects.toThrow(
        /is done: only an interrupted or cancelled run can be resumed/,
      );
    } finally {
      await second.close();
    }
  });
});
