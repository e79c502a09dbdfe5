/**
 * The trainings on a worker thread, with the same requests, events and results as their services.
 * ONNX Runtime's Node binding runs a session synchronously on the calling thread, so a training in the
 * engine process held every other call — the gallery, a translation, a cancel — for a whole training
 * step, and for the seconds (a 64×64 U-Net: 10–30 s) its training graph takes to build and load.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TrainDiscriminatorRequest, TrainEvents, TrainResult } from './discriminator-training.js';
import type { ScoreTrainEvents, ScoreTrainResult, TrainScoreModelRequest } from './score-training.js';

export type TrainingKind = 'score' | 'discriminator';

/** What the worker is given: which training, its request, and the events the caller listens to. */
export interface ThreadData {
  kind: TrainingKind;
  req: unknown;
  events: string[];
}

export type ThreadMessage =
  | { type: 'event'; name: string; payload: unknown }
  | { type: 'result'; result: unknown }
  | { type: 'error'; message: string; name: string };

/**
 * The worker: the built script (out/main), else the source through tsx's tsImport (development and
 * tests; a worker does not inherit the loader that --import registered here).
 */
function startWorker(workerData: ThreadData): Worker {
  // this module lies in out/main or, when shared by several entries, in out/main/chunks
  const built = ['.', '..'].map((d) => join(import.meta.dirname, d, 'training-worker.js')).find((f) => existsSync(f));
  if (built) return new Worker(built, { workerData });
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('tsx/package.json');
  const api = (JSON.parse(readFileSync(pkg, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!;
  const tsx = pathToFileURL(join(dirname(pkg), api.import.default)).href;
  const source = pathToFileURL(join(import.meta.dirname, 'training.worker.ts')).href;
  const load = `import(${JSON.stringify(tsx)}).then(({ tsImport }) => tsImport(${JSON.stringify(source)}, ${JSON.stringify(source)}))`;
  return new Worker(load, { eval: true, workerData });
}

function onThread<R>(kind: TrainingKind, req: unknown, events: object, signal: AbortSignal | undefined): Promise<R> {
  const listened = Object.keys(events).filter((k) => typeof (events as Record<string, unknown>)[k] === 'function');
  const worker = startWorker({ kind, req, events: listened });
  const abort = () => worker.postMessage('abort');
  if (signal?.aborted) abort();
  signal?.addEventListener('abort', abort, { once: true });
  return new Promise<R>((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', abort);
      f();
    };
    worker.on('message', (m: ThreadMessage) => {
      if (m.type === 'event') (events as Record<string, ((p: unknown) => void) | undefined>)[m.name]?.(m.payload);
      else if (m.type === 'result') settle(() => resolve(m.result as R));
      else
        settle(() => {
          const e = new Error(m.message);
          e.name = m.name;
          reject(e);
        });
    });
    worker.on('error', (e) => settle(() => reject(new Error(`the training thread failed: ${e.message}`, { cause: e }))));
    worker.on('exit', (code) =>
      settle(() => reject(new Error(`the training thread stopped (exit code ${code}) before it finished; its last checkpoint is kept`))),
    );
  });
}

/** trainScoreModel (score-training.ts) on a worker thread. */
export const trainScoreModelOnThread = (req: TrainScoreModelRequest, events: ScoreTrainEvents = {}, signal?: AbortSignal) =>
  onThread<ScoreTrainResult>('score', req, events, signal);

/** trainDiscriminator (discriminator-training.ts) on a worker thread. */
export const trainDiscriminatorOnThread = (req: TrainDiscriminatorRequest, events: TrainEvents = {}, signal?: AbortSignal) =>
  onThread<TrainResult>('discriminator', req, events, signal);
