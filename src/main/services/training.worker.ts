/**
 * The worker-thread side of training-thread.ts: runs the training named in workerData and posts
 * the events its caller listens to, then its result or its error; the message 'abort' cancels it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { trainDiscriminator, type TrainDiscriminatorRequest } from './discriminator-training.js';
import { trainScoreModel, type TrainScoreModelRequest } from './score-training.js';
import type { ThreadData, ThreadMessage } from './training-thread.js';

const port = parentPort!;
const post = (m: ThreadMessage) => port.postMessage(m);
const controller = new AbortController();
port.on('message', (m) => {
  if (m === 'abort') controller.abort();
});
const { kind, req, events: listened } = workerData as ThreadData;
// the events the caller listens to, and only those (a service may look at which handlers it was given)
const events: Record<string, (payload: unknown) => void> = {};
for (const name of listened) events[name] = (payload) => post({ type: 'event', name, payload });
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
