import { describe, expect, it } from 'vitest';
import { jobRate, JobQueue } from '../../src/main/services/jobs.js';

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
  });
});
