/**
 * The job queue: one runner per device, jobs in priority order and FIFO within a priority,
 * cancel (queued or running), and progress events. A job is a function that receives an
 * AbortSignal and a progress callback; what it does (translate, train, sweep) is its own.
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

export interface JobInfo {
  id: number;
  kind: string;
  label: string;
  device: string;
  priority: number;
  state: JobState;
  progress: JobProgress | null;
  error: string | null;
  result: unknown;
  /** when the job started running (ms since the epoch), and when it finished */
  startedAt: number | null;
  finishedAt: number | null;
}

/** Steps per second since a job started and the time left at that rate (null until there is progress). */
export function jobRate(
  j: Pick<JobInfo, 'startedAt' | 'finishedAt' | 'progress'>,
  now = Date.now(),
): { rate: number | null; etaSeconds: number | null } {
  if (!j.startedAt || !j.progress || j.progress.done <= 0) return { rate: null, etaSeconds: null };
  const seconds = ((j.finishedAt ?? now) - j.startedAt) / 1000;
  if (seconds <= 0) return { rate: null, etaSeconds: null };
  const rate = j.progress.done / seconds;
  return { rate, etaSeconds: j.finishedAt ? 0 : Math.max(0, (j.progress.total - j.progress.done) / rate) };
}

export type JobFn = (ctx: { signal: AbortSignal; progress(p: JobProgress): void }) => Promise<unknown>;

interface Entry extends JobInfo {
  fn: JobFn;
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

  /** Queue a job on a device ('cpu', 'cuda', …); higher priority runs first. */
  submit(kind: string, label: string, fn: JobFn, opts: { device?: string; priority?: number } = {}): JobInfo {
    let settle!: (j: JobInfo) => void;
    const finished = new Promise<JobInfo>((r) => (settle = r));
    const entry: Entry = {
      id: this.nextId++,
      kind,
      label,
      device: opts.device ?? 'cpu',
      priority: opts.priority ?? 0,
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
    queueMicrotask(() => this.pump(entry.device));
    return this.info(entry);
  }

  private info(e: Entry): JobInfo {
    const { id, kind, label, device, priority, state, progress, error, result, startedAt, finishedAt } = e;
    return { id, kind, label, device, priority, state, progress, error, result, startedAt, finishedAt };
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

  private next(device: string): Entry | undefined {
    let best: Entry | undefined;
    for (const e of this.jobs.values()) {
      if (e.device !== device || e.state !== 'queued') continue;
      if (!best || e.priority > best.priority || (e.priority === best.priority && e.seq < best.seq)) best = e;
    }
    return best;
  }

  private async pump(device: string): Promise<void> {
    if (this.running.has(device)) return;
    const e = this.next(device);
    if (!e) return;
    this.running.set(device, e);
    e.state = 'running';
    e.startedAt = Date.now();
    this.emitUpdate(e);
    try {
      const result = await e.fn({
        signal: e.controller.signal,
        progress: (p) => {
          e.progress = p;
          this.emitUpdate(e);
        },
      });
      this.finish(e, e.controller.signal.aborted ? 'cancelled' : 'done', null, result);
    } catch (err) {
      const cancelled = e.controller.signal.aborted || (err as Error).name === 'CancelledError';
      this.finish(e, cancelled ? 'cancelled' : 'failed', cancelled ? null : (err as Error).message);
    } finally {
      this.running.delete(device);
      void this.pump(device);
    }
  }
}
