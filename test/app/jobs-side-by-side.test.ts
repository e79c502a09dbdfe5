/**
 * Issue 28, finding 1: a translation never waits behind a training. With a target-model training
 * running in the back end, a translation starts at once, finishes while the training is still running
 * (the training pauses between its steps meanwhile, and says so), and the training goes on after.
 * How fast the translation runs beside the training is bench/jobs-side-by-side.ts's question.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { StudioBackend } from '../../src/main/backend/backend.js';
import type { JobDto } from '../../src/shared/api.js';
import { jobOf, untilJob } from '../helpers/jobs.js';
import { tempDir } from '../helpers/tmp.js';

/** as long as a test may wait for one job state */
const until = (b: StudioBackend, id: number, ok: (j: JobDto) => boolean) => untilJob(b, id, ok, 110_000);

describe('jobs side by side', () => {
  it('a translation started during a training finishes while the training still runs; the training pauses for it, then goes on', async () => {
    const backend = await StudioBackend.create({ mode: 'server', dataDir: await tempDir() });
    const notes: string[] = [];
    backend.onEvent((e) => {
      if (e.type === 'job' && e.job.note) notes.push(e.job.note);
    });
    try {
      const files = await Promise.all(
        [0, 1, 2, 3].map(async (i) => ({
          name: `t${i}.png`,
          data: new Uint8Array(
            await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 60 * i, g: 120, b: 200 - 40 * i } } })
              .png()
              .toBuffer(),
          ),
        })),
      );
      const { sources } = (await backend.dispatch('addSources', [{ files }])) as { sources: { id: string }[] };
      const ids = sources.map((s) => s.id);
      const train = (await backend.dispatch('trainScoreModel', [
        { targets: ids, name: 'side-by-side', steps: 1_000_000, channels: 8, resolution: 32, batchSize: 4 },
      ])) as { jobId: number };
      // wait until the training is really stepping (its graph is built and progress comes)
      const stepping = await until(backend, train.jobId, (j) => j.state === 'running' && j.done > 2);
      expect([stepping.state, stepping.error]).toEqual(['running', null]);
      const { jobId } = (await backend.dispatch('translate', [
        { sources: ids.slice(0, 2), params: { steps: 4, dgWeight: 0 }, model: null, discriminator: null },
      ])) as { jobId: number };
      const translated = await until(backend, jobId, (j) => j.state !== 'queued' && j.state !== 'running');
      expect([translated.state, translated.error]).toEqual(['done', null]);
      const during = await jobOf(backend, train.jobId);
      expect(during.state).toBe('running'); // the translation did not wait for the training to end
      expect(notes).toContain(`paused while job #${jobId} (2 image(s), t0 0.5, w 0) runs; it goes on after`);
      const after = await until(backend, train.jobId, (j) => j.done > during.done + 2 && j.note === null);
      expect(after.done).toBeGreaterThan(during.done + 2); // and it goes on
      await backend.dispatch('cancelJob', [train.jobId]);
      expect((await until(backend, train.jobId, (j) => j.state !== 'running')).state).toBe('cancelled');
    } finally {
      await backend.close();
    }
  }, 180_000);
});
