/**
 * The job queue: per device, two runners — interactive work (translations, sweeps) and background work
 * (trainings) — each taking its jobs in priority order and FIFO within a priority; cancel (queued or
 * running) and progress events. A background job is handed a pause flag that the queue raises while
 * interactive work runs on its device: a training yields between its steps, so a translation started
 * during a training runs at about its speed alone instead of waiting behind it. A job is a function that
 * receives an AbortSignal, a progress callback and that flag; what it does is its own.
 */
import { EventEmitter } from 'node:events';
import type { TrainingProgress } from '../../shared/api.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface JobProgress {
  done: number;
  total: number;
  message?: string;
  /** a preview image (PNG bytes), e.g. the current x̂0 */
  preview?: Uint8Array;
  /** a training's curve, rate and held-out error */
  training?: TrainingProgress;
}

/** Interactive jobs run one at a time per device; background jobs on their own runner, pausing for them. */
export type JobLane = 'interactive' | 'background';

export interface JobInfo {
  id: number;
  kind: string;
  label: string;
  device: string;
  lane: JobLane;
  priority: number;
  /** why a job waits or is paused, and behind which job (null when it simply runs) */
  note: string | null;
  state: JobState;
  progress: JobProgress | null;
  error: string | null;
  result: unknown;
  /** when the job started running (ms since the epoch), and when it finished */
  startedAt: number | null;
  finishedAt: number | null;
  /** the first progress report (when, and how much was done): the rate is measured from it, not from the start,
   * so loading models does not count as slow work */
  firstProgress?: { at: number; done: number } | null;
}

/**
 * Steps per second and the time left at that rate (null until it can be measured). While running, the rate is
 * measured from the first progress report — model loading and the first step's warm-up are not work — so it
 * needs a second report; a finished job's rate is over its whole run.
 */
export function jobRate(
  j: Pick<JobInfo, 'startedAt' | 'finishedAt' | 'progress' | 'firstProgress'>,
  now = Date.now(),
): { rate: number | null; etaSeconds: number | null } {
  const none = { rate: null, etaSeconds: null };
  if (!j.startedAt || !j.progress || j.progress.done <= 0) return none;
  if (j.finishedAt) {
    const seconds = (j.finishedAt - j.startedAt) / 1000;
    return seconds > 0 ? { rate: j.progress.done / seconds, etaSeconds: 0 } : none;
  }
  const from = j.firstProgress ?? { at: j.startedAt, done: 0 };
  const seconds = (now - from.at) / 1000;
  const work = j.progress.done - from.done;
  if (seconds <= 0 || work <= 0) return none;
  const rate = work / seconds;
  return { rate, etaSeconds: Math.max(0, (j.progress.total - j.progress.done) / rate) };
}

/**
 * A pause flag shared with a background job (and, through a SharedArrayBuffer, with its worker thread):
 * element 0 is 1 while interactive work runs on the job's device. `waitWhilePaused` is how a loop honours it.
 */
export type PauseFlag = Int32Array;

export function newPauseFlag(): PauseFlag {
  return new Int32Array(new SharedArrayBuffer(4));
}

/** Resolves at once when the flag is down, else when it next goes down (checked every `pollMs`). */
export async function waitWhilePaused(flag: PauseFlag | undefined, signal?: AbortSignal, pollMs = 25): Promise<void> {
  while (flag && Atomics.load(flag, 0) === 1 && !signal?.aborted) await new Promise((r) => setTimeout(r, pollMs));
}

export type JobFn = (ctx: { signal: AbortSignal; progress(p: JobProgress): void; pause: PauseFlag }) => Promise<unknown>;

interface Entry extends JobInfo {
  fn: JobFn;
  pause: PauseFlag;
  controller: AbortController;
  seq: number;
  finished: Promise<JobInfo>;
  settle: (j: JobInfo) => void;
}

export interface JobEvents {
  update: [JobInfo];
}

export class JobQueue extends EventEmitter<JobEvents> {
  private readonly jobs = new Map<number, Entry>();
  private readonly running = new Map<string, Entry>();
  private nextId = 1;
  private seq = 0;

  /** Queue a job on a device ('cpu', 'cuda', …) and lane (interactive unless said); higher priority runs first. */
  submit(kind: string, label: string, fn: JobFn, opts: { device?: string; priority?: number; lane?: JobLane } = {}): JobInfo {
    let settle!: (j: JobInfo) => void;
    const finished = new Promise<JobInfo>((r) => (settle = r));
    const entry: Entry = {
      id: this.nextId++,
      kind,
      label,
      device: opts.device ?? 'cpu',
      lane: opts.lane ?? 'interactive',
      priority: opts.priority ?? 0,
      note: null,
      pause: newPauseFlag(),
      state: 'queued',
      progress: null,
      error: null,
      result: undefined,
      startedAt: null,
      finishedAt: null,
      fn,
      controller: new AbortController(),
      seq: this.seq++,
      finished,
      settle,
    };
    this.jobs.set(entry.id, entry);
    this.emitUpdate(entry);
    this.updateNotes(entry.device);
    queueMicrotask(() => this.pump(runnerOf(entry)));
    return this.info(entry);
  }

  private info(e: Entry): JobInfo {
    const { id, kind, label, device, lane, priority, note, state, progress, error, result, startedAt, finishedAt, firstProgress } = e;
    return { id, kind, label, device, lane, priority, note, state, progress, error, result, startedAt, finishedAt, firstProgress };
  }

  /**
   * Raise or lower the background jobs' pause flags on a device and say, for every waiting or paused job,
   * what it waits for; emits an update for each job whose note changed.
   */
  private updateNotes(device: string): void {
    const interactive = this.running.get(runnerOf({ device, lane: 'interactive' }));
    for (const e of this.jobs.values()) {
      if (e.device !== device) continue;
      let note: string | null = null;
      if (e.state === 'queued') {
        const ahead = this.running.get(runnerOf(e));
        note = ahead ? `waiting for job #${ahead.id} (${ahead.label}) to finish` : null;
      } else if (e.state === 'running' && e.lane === 'background') {
        Atomics.store(e.pause, 0, interactive ? 1 : 0);
        note = interactive ? `paused while job #${interactive.id} (${interactive.label}) runs; it goes on after` : null;
      }
      if (note !== e.note) {
        e.note = note;
        this.emitUpdate(e);
      }
    }
  }

  private emitUpdate(e: Entry): void {
    this.emit('update', this.info(e));
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((e) => this.info(e));
  }

  get(id: number): JobInfo | undefined {
    const e = this.jobs.get(id);
    return e && this.info(e);
  }

  /** Resolves when the job has finished, whatever its outcome. */
  wait(id: number): Promise<JobInfo> {
    const e = this.jobs.get(id);
    if (!e) return Promise.reject(new Error(`no job ${id}`));
    return e.finished;
  }

  cancel(id: number): boolean {
    const e = this.jobs.get(id);
    if (!e || e.state === 'done' || e.state === 'failed' || e.state === 'cancelled') return false;
    e.controller.abort();
    if (e.state === 'queued') this.finish(e, 'cancelled');
    return true;
  }

  private finish(e: Entry, state: JobState, error: string | null = null, result?: unknown): void {
    e.state = state;
    e.error = error;
    e.result = result;
    e.finishedAt = Date.now();
    // a finished job's bar is full, whatever its last progress report said
    if (state === 'done' && e.progress) e.progress = { ...e.progress, done: e.progress.total };
    this.emitUpdate(e);
    e.settle(this.info(e));
  }

  private next(runner: string): Entry | undefined {
    let best: Entry | undefined;
    for (const e of this.jobs.values()) {
      if (runnerOf(e) !== runner || e.state !== 'queued') continue;
      if (!best || e.priority > best.priority || (e.priority === best.priority && e.seq < best.seq)) best = e;
    }
    return best;
  }

  private async pump(runner: string): Promise<void> {
    if (this.running.has(runner)) return;
    const e = this.next(runner);
    if (!e) return;
    this.running.set(runner, e);
    e.state = 'running';
    e.startedAt = Date.now();
    this.emitUpdate(e);
    this.updateNotes(e.device);
    try {
      const result = await e.fn({
        signal: e.controller.signal,
        pause: e.pause,
        progress: (p) => {
          e.firstProgress ??= { at: Date.now(), done: p.done };
          e.progress = p;
          this.emitUpdate(e);
        },
      });
      this.finish(e, e.controller.signal.aborted ? 'cancelled' : 'done', null, result);
    } catch (err) {
      const cancelled = e.controller.signal.aborted || (err as Error).name === 'CancelledError';
      this.finish(e, cancelled ? 'cancelled' : 'failed', cancelled ? null : (err as Error).message);
    } finally {
      this.running.delete(runner);
      this.updateNotes(e.device);
      void this.pump(runner);
    }
  }
}

/** The runner a job goes to: one per device and lane. */
const runnerOf = (e: Pick<JobInfo, 'device' | 'lane'>) => `${e.device}/${e.lane}`;
