import { describe, expect, it } from 'vitest';
import { jobRate, JobQueue, waitWhilePaused } from '../../src/main/services/jobs.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('job queue', () => {
  it('runs one job per device at a time, by priority then FIFO', async () => {
    const q = new JobQueue();
    const order: string[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const job = (name: string) => async () => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      order.push(name);
      await tick();
      concurrent--;
    };
    const a = q.submit('t', 'a', job('a'));
    const b = q.submit('t', 'b', job('b'));
    const c = q.submit('t', 'c', job('c'), { priority: 5 });
    const d = q.submit('t', 'd', job('d'), { device: 'cuda' });
    await Promise.all([a, b, c, d].map((j) => q.wait(j.id)));
    // submitted together: the high-priority c first, then a and b in order
    expect(order.filter((n) => n !== 'd')).toEqual(['c', 'a', 'b']);
    expect(maxConcurrent).toBe(2); // cpu and cuda side by side, never two on one device
  });

  it('cancels queued and running jobs; failures are recorded and the queue goes on', async () => {
    const q = new JobQueue();
    const long = q.submit('t', 'long', async ({ signal, progress }) => {
      for (let i = 0; i < 100; i++) {
        if (signal.aborted) throw Object.assign(new Error('cancelled'), { name: 'CancelledError' });
        progress({ done: i, total: 100 });
        await tick();
      }
    });
    const queued = q.submit('t', 'queued', async () => 'never');
    const bad = q.submit('t', 'bad', async () => {
      throw new Error('model file is corrupt');
    });
    const good = q.submit('t', 'good', async () => 42);
    const updates: string[] = [];
    q.on('update', (j) => updates.push(`${j.label}:${j.state}`));
    await tick();
    expect(q.cancel(queued.id)).toBe(true);
    expect(q.cancel(long.id)).toBe(true);
    expect((await q.wait(long.id)).state).toBe('cancelled');
    expect((await q.wait(queued.id)).state).toBe('cancelled');
    const failed = await q.wait(bad.id);
    expect([failed.state, failed.error]).toEqual(['failed', 'model file is corrupt']);
    expect((await q.wait(good.id)).result).toBe(42);
    expect(updates).toContain('long:running');
    expect(q.get(long.id)!.progress!.total).toBe(100);
  });

  it("a finished job's bar is full though its last report was earlier; rate and time left come from its start", async () => {
    const q = new JobQueue();
    const j = q.submit('t', 'x', async ({ progress }) => {
      progress({ done: 9, total: 10, message: 'image 9/10' });
      await tick();
    });
    const done = await q.wait(j.id);
    expect(done.progress).toMatchObject({ done: 10, total: 10 });
    expect(done.startedAt).not.toBeNull();
    expect(done.finishedAt! >= done.startedAt!).toBe(true);
    const start = 1_000_000;
    expect(jobRate({ startedAt: start, finishedAt: null, progress: { done: 20, total: 50 } }, start + 10_000)).toEqual({
      rate: 2,
      etaSeconds: 15,
    });
    expect(jobRate({ startedAt: start, finishedAt: null, progress: null }, start + 10_000)).toEqual({ rate: null, etaSeconds: null });
    expect(jobRate({ startedAt: start, finishedAt: start + 5000, progress: { done: 50, total: 50 } })).toEqual({ rate: 10, etaSeconds: 0 });
    // measured from the first report: 8 s of model loading before it (done 1 at +8 s) does not make the job look slow
    const loaded = { startedAt: start, finishedAt: null, firstProgress: { at: start + 8000, done: 1 } };
    expect(jobRate({ ...loaded, progress: { done: 1, total: 10 } }, start + 8000)).toEqual({ rate: null, etaSeconds: null });
    expect(jobRate({ ...loaded, progress: { done: 3, total: 10 } }, start + 9000)).toEqual({ rate: 2, etaSeconds: 3.5 });
  });

  it('a background job runs beside interactive ones, paused (with a note saying by which) while they run', async () => {
    const q = new JobQueue();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const flags: number[] = [];
    let steps = 0;
    const training = q.submit(
      'train',
      'training',
      async ({ pause, signal }) => {
        while (!signal.aborted) {
          await waitWhilePaused(pause, signal, 2);
          flags.push(Atomics.load(pause, 0));
          steps++;
          await tick();
        }
      },
      { lane: 'background' },
    );
    await tick();
    expect(q.get(training.id)!.state).toBe('running');
    const before = steps;
    expect(before).toBeGreaterThan(0);
    // an interactive job starts at once although the training runs, and the training pauses for it
    const translation = q.submit('translate', 'two images', () => gate);
    const queued = q.submit('translate', 'next one', async () => 'second');
    await tick();
    expect(q.get(translation.id)!.state).toBe('running');
    expect(q.get(training.id)!.note).toBe(`paused while job #${translation.id} (two images) runs; it goes on after`);
    expect(q.get(queued.id)!.note).toBe(`waiting for job #${translation.id} (two images) to finish`);
    const during = steps;
    await new Promise((r) => setTimeout(r, 40));
    expect(steps - during).toBeLessThanOrEqual(1); // at most the step that was under way
    release();
    expect((await q.wait(queued.id)).result).toBe('second');
    await new Promise((r) => setTimeout(r, 30));
    expect(q.get(training.id)!.note).toBeNull();
    expect(steps).toBeGreaterThan(during + 1); // it went on after
    expect(flags.every((f) => f === 0)).toBe(true); // no step ran with the flag raised
    q.cancel(training.id);
    expect((await q.wait(training.id)).state).toBe('cancelled');
  });
});
