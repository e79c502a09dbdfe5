import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { trainScoreModel, type TrainScoreModelRequest } from '../../src/main/services/score-training.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { trainDiscriminatorOnThread, trainScoreModelOnThread } from '../../src/main/services/training-thread.js';
import { tempDir } from '../helpers/tmp.js';

/** The longest the calling thread's event loop went without running a 10 ms timer while `work` ran. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 10);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(longest, performance.now() - last);
}

describe('trainings on a worker thread', async () => {
  const root = await tempDir();
  const data = join(root, 'data');
  await mkdir(data, { recursive: true });
  for (let i = 0; i < 6; i++)
    await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 40 * i, g: 200 - 20 * i, b: 90 } } })
      .png()
      .toFile(join(data, `img${i}.png`));
  const req = (out: string, over: Partial<TrainScoreModelRequest> = {}): TrainScoreModelRequest => ({
    data: [data],
    outDir: join(root, out),
    arch: { resolution: 32, channels: 8, groups: 4, mult: [1, 2, 2], attn: [8] },
    batchSize: 8,
    steps: 2,
    ...over,
  });

  it('trains as in the calling thread, forwards its events, and leaves the calling thread free while the graph builds', async () => {
    const stages: string[] = [];
    const previews: Uint8Array[] = [];
    const evals: number[][] = [];
    let result!: Awaited<ReturnType<typeof trainScoreModelOnThread>>;
    const threadStall = await longestStall(async () => {
      result = await trainScoreModelOnThread(req('thread'), {
        onStage: (s) => stages.push(s),
        onPreview: (png) => previews.push(png),
        onEval: (e) => evals.push(e.errors),
      });
    });
    expect(result.steps).toBe(2);
    expect(result.cancelled).toBe(false);
    expect(JSON.parse(await readFile(result.manifestPath, 'utf8')).training.steps).toBe(2);
    expect(stages.some((s) => /training a 0\.\d+M-parameter U-Net/.test(s))).toBe(true);
    expect(evals.at(-1)!.every((e) => Number.isFinite(e) && e > 0)).toBe(true);
    expect([...previews.at(-1)!.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]); // a PNG, intact across the thread
    // the same training in this thread holds its event loop for the graph's build and load
    const ownStall = await longestStall(() => trainScoreModel(req('here')));
    expect(ownStall).toBeGreaterThan(4 * threadStall);
  });

  it('a cancel reaches the thread: it stops, keeps what it learned, and says so', async () => {
    const controller = new AbortController();
    const r = await trainScoreModelOnThread(req('cancelled', { steps: 100_000 }), { onStage: () => controller.abort() }, controller.signal);
    expect(r.cancelled).toBe(true);
    expect(r.steps).toBeLessThan(100_000);
    expect(JSON.parse(await readFile(r.manifestPath, 'utf8')).training.cancelled).toBe(true);
  });

  it("the thread's errors come back with their message", async () => {
    await mkdir(join(root, 'empty'), { recursive: true });
    await expect(trainScoreModelOnThread(req('none', { data: [join(root, 'empty')] }))).rejects.toThrow(
      /training data: folder ".*empty" holds no images/,
    );
  });

  it('a discriminator trains there too: its events come back and its package is written', async () => {
    const progress: number[] = [];
    const r = await trainDiscriminatorOnThread(
      {
        modelManifest: bundledDefaults().scoreModel,
        sources: [data],
        targets: [data],
        outDir: join(root, 'disc'),
        t0Range: [0.3, 0.5],
        batchSize: 4,
        channels: [8, 16, 16, 16],
        translationSteps: 2,
        steps: 3,
        evalEvery: 10,
      },
      { onProgress: (p) => progress.push(p.step) },
    );
    expect(r.steps).toBe(3);
    expect(progress.at(-1)).toBe(3);
    expect(JSON.parse(await readFile(r.manifestPath, 'utf8')).format).toMatch(/^dg-studio\/discriminator/);
  });
});
