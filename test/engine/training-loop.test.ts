/** The one training loop of both trainers: its stops, cadences, loss average and progress. */
import { describe, expect, it } from 'vitest';
import { lossMovingAverage, runTrainingLoop } from '../../src/main/engine/train/loop.js';

/** a fake trainer: step k has loss 1/k */
function fakeTrainer() {
  let step = 0;
  return { step: () => step, trainStep: async () => 1 / ++step };
}

describe('runTrainingLoop', () => {
  it('stops at until.steps, evaluates every n steps and at the last one, checkpoints every m steps', async () => {
    const t = fakeTrainer();
    const evals: number[] = [];
    const checkpoints: number[] = [];
    const progress: number[] = [];
    const r = await runTrainingLoop({
      ...t,
      itemsPerStep: 4,
      until: { steps: 10 },
      lossEmaDecay: 0.5,
      reportEveryMs: 60_000,
      onProgress: (p) => progress.push(p.step),
      evaluate: { every: { steps: 4 }, atLastStep: true, run: async () => void evals.push(t.step()) },
      checkpoint: { every: { steps: 3 }, run: async () => void checkpoints.push(t.step()) },
    });
    expect(r.cancelled).toBe(false);
    expect(t.step()).toBe(10);
    expect(evals).toEqual([4, 8, 10]);
    expect(checkpoints).toEqual([3, 6, 9]);
    expect(progress).toEqual([10]); // throttled to one report a minute, but the last step is always reported
    // the moving average of 1, 1/2, …, 1/10 with decay 0.5, by the formula
    let ema = NaN;
    for (let k = 1; k <= 10; k++) ema = lossMovingAverage(ema, 1 / k, 0.5);
    expect(r.lossEma).toBeCloseTo(ema, 12);
    expect(r.loss).toBeCloseTo(0.1, 12);
  });

  it('a resumed trainer continues to until.steps in all, not that many more', async () => {
    let step = 7;
    const r = await runTrainingLoop({
      step: () => step,
      trainStep: async () => ++step,
      itemsPerStep: 1,
      until: { steps: 9 },
      lossEmaDecay: 0.9,
      reportEveryMs: 0,
    });
    expect([r.cancelled, step]).toEqual([false, 9]);
  });

  it('an abort stops before the next step and says cancelled; evaluate-without-atLastStep is not run at the end', async () => {
    const t = fakeTrainer();
    const controller = new AbortController();
    const evals: number[] = [];
    const r = await runTrainingLoop({
      step: t.step,
      trainStep: async () => {
        const loss = await t.trainStep();
        if (t.step() === 3) controller.abort();
        return loss;
      },
      itemsPerStep: 1,
      until: { steps: 100 },
      lossEmaDecay: 0.9,
      reportEveryMs: 0,
      evaluate: { every: { steps: 1000 }, run: async () => void evals.push(t.step()) },
      signal: controller.signal,
    });
    expect([r.cancelled, t.step(), evals]).toEqual([true, 3, []]);
  });

  it('a time budget stops the loop; a time cadence runs when its interval has passed', async () => {
    const t = fakeTrainer();
    const checkpoints: number[] = [];
    const started = performance.now();
    const r = await runTrainingLoop({
      step: t.step,
      trainStep: async () => {
        await new Promise((res) => setTimeout(res, 5));
        return t.trainStep();
      },
      itemsPerStep: 1,
      until: { minutes: 0.2 / 60 }, // 200 ms
      lossEmaDecay: 0.9,
      reportEveryMs: 0,
      checkpoint: { every: { ms: 50 }, run: async () => void checkpoints.push(t.step()) },
    });
    const elapsed = performance.now() - started;
    expect(r.cancelled).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(200);
    // at most 200 ms / 5 ms steps (+1: the step that crosses the budget); at least two
    expect(t.step()).toBeGreaterThanOrEqual(2);
    expect(t.step()).toBeLessThanOrEqual(41);
    // a checkpoint at most every 50 ms: no more than elapsed / 50 of them, and at least one in 200 ms
    expect(checkpoints.length).toBeGreaterThanOrEqual(1);
    expect(checkpoints.length).toBeLessThanOrEqual(Math.floor(elapsed / 50));
  });
});
