/**
 * The worker-thread side of training-thread.ts: runs the training named in workerData and posts
 * its events, then its result or its error; the message 'abort' cancels it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { trainDiscriminator, type TrainDiscriminatorRequest } from './discriminator-training.js';
import { trainScoreModel, type TrainScoreModelRequest } from './score-training.js';
import { TRAININGS, type ThreadMessage, type TrainingKind } from './training-thread.js';

const port = parentPort!;
const post = (m: ThreadMessage) => port.postMessage(m);
const controller = new AbortController();
port.on('message', (m) => {
  if (m === 'abort') controller.abort();
});
const { kind, req } = workerData as { kind: TrainingKind; req: unknown };
const events: Record<string, (payload: unknown) => void> = {};
for (const name of TRAININGS[kind]) events[name] = (payload) => post({ type: 'event', name, payload });
try {
  const result =
    kind === 'score'
      ? await trainScoreModel(req as TrainScoreModelRequest, events, controller.signal)
      : await trainDiscriminator(req as TrainDiscriminatorRequest, events, controller.signal);
  post({ type: 'result', result });
} catch (e) {
  post({ type: 'error', message: (e as Error).message, name: (e as Error).name });
} finally {
  port.close();
}
