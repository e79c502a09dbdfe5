/**
 * The one training loop of both trainers (score model and discriminator): stop at a step count, a time
 * budget or an abort; a moving average of the loss; throttled progress; evaluation and checkpoints on
 * their own cadence (every n steps and/or every so many minutes). What a step, an evaluation or a
 * checkpoint is belongs to the caller.
 */

/** How often something happens: every `steps` steps, every `ms` milliseconds, or both (whichever first). */
export interface Cadence {
  steps?: number;
  ms?: number;
}

export interface LoopProgress {
  step: number;
  loss: number;
  lossEma: number;
  /** items (images) per second since the last report */
  itemsPerSecond: number;
  /** milliseconds since the loop started */
  elapsedMs: number;
}

export interface TrainingLoopOptions {
  /** the trainer's step counter (it may start above 0 on a resume) */
  step(): number;
  /** one optimisation step; returns its loss */
  trainStep(): Promise<number>;
  /** images per step, for the rate */
  itemsPerStep: number;
  /** stop at this step in all, and/or after this many minutes of this run */
  until: { steps?: number; minutes?: number };
  /** decay of the loss's moving average (0.95: about the last 20 steps) */
  lossEmaDecay: number;
  /** the shortest time between two progress reports; the last step is always reported */
  reportEveryMs: number;
  onProgress?(p: LoopProgress): void;
  /** awaited before each step: resolves when the trainer may go on (the studio pauses trainings while a
   * translation runs; time spent here counts against `until.minutes`) */
  pause?(): Promise<void>;
  /** `atLastStep`: also when the loop reaches `until.steps` (a caller that evaluates after the loop leaves it off) */
  evaluate?: { every: Cadence; atLastStep?: boolean; run(): Promise<void> };
  checkpoint?: { every: Cadence; run(): Promise<void> };
  signal?: AbortSignal;
}

export interface LoopResult {
  cancelled: boolean;
  /** the last step's loss and the moving average (NaN when no step ran) */
  loss: number;
  lossEma: number;
}

/** The moving average of a loss: the first value itself, then decay·ema + (1 − decay)·loss. */
export function lossMovingAverage(ema: number, loss: number, decay: number): number {
  return Number.isNaN(ema) ? loss : decay * ema + (1 - decay) * loss;
}

/** Whether a cadence is due at `step`, `sinceMs` after it last ran. */
function due(c: Cadence, step: number, sinceMs: number): boolean {
  return (c.steps !== undefined && step % c.steps === 0) || (c.ms !== undefined && sinceMs > c.ms);
}

export async function runTrainingLoop(o: TrainingLoopOptions): Promise<LoopResult> {
  const start = performance.now();
  let lastEval = start;
  let lastCheckpoint = start;
  let lastReport = { at: start, step: o.step() };
  let loss = NaN;
  let lossEma = NaN;
  const finished = () =>
    (o.until.steps !== undefined && o.step() >= o.until.steps) ||
    (o.until.minutes !== undefined && performance.now() - start > o.until.minutes * 60_000);
  while (!finished()) {
    await o.pause?.();
    if (o.signal?.aborted) return { cancelled: true, loss, lossEma };
    loss = await o.trainStep();
    lossEma = lossMovingAverage(lossEma, loss, o.lossEmaDecay);
    const step = o.step();
    const now = performance.now();
    const last = o.until.steps !== undefined && step >= o.until.steps;
    if (now - lastReport.at > o.reportEveryMs || last) {
      const itemsPerSecond = ((step - lastReport.step) * o.itemsPerStep * 1000) / Math.max(now - lastReport.at, 1e-9);
      o.onProgress?.({ step, loss, lossEma, itemsPerSecond, elapsedMs: now - start });
      lastReport = { at: now, step };
    }
    if (o.evaluate && (due(o.evaluate.every, step, now - lastEval) || (last && o.evaluate.atLastStep))) {
      await o.evaluate.run();
      lastEval = performance.now();
    }
    if (o.checkpoint && due(o.checkpoint.every, step, now - lastCheckpoint)) {
      await o.checkpoint.run();
      lastCheckpoint = performance.now();
    }
  }
  return { cancelled: false, loss, lossEma };
}
