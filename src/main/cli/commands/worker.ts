/**
 * `dg-studio worker`: one machine's share of a lab's batch (docs/scale-out.md) — takes translate chunks from
 * the BullMQ queue on a Redis, runs them with the models it holds and returns the results through Redis.
 */
import type { Command } from '@commander-js/extra-typings';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dataDir, resourcesDir } from '../../services/resources.js';
import { startWorker } from '../../services/scale-out/worker.js';
import { positiveInt, providerOption, threadsOption } from '../options.js';
import { EXIT_OK, runAction } from '../run.js';

function workerCommand(program: Command) {
  return program
    .command('worker')
    .description("translate a lab's queued chunks (BullMQ on Redis) until stopped; safe to kill at any moment")
    .requiredOption('--redis <url>', "the queue's Redis: redis://host:6379 (rediss:// for TLS)")
    .option('--redis-password-file <file>', 'read the Redis password from this file (it does not show in the process list)')
    .option('--concurrency <n>', 'chunks at once (each on --threads threads)', positiveInt('--concurrency'), 1)
    .option(
      '--models <dirs...>',
      "model folders, or folders of model folders, this worker may run (always: the bundled models and the studio's own)",
    )
    .option(
      '--lock-seconds <s>',
      "how long a chunk's lock lasts unrenewed: how soon a dead worker's chunk goes to another",
      positiveInt('--lock-seconds'),
      30,
    )
    .addOption(providerOption())
    .addOption(threadsOption());
}
type WorkerOptions = ReturnType<ReturnType<typeof workerCommand>['opts']>;

export function addWorker(program: Command): void {
  workerCommand(program).action((o) => runAction(() => runWorker(o)));
}

async function runWorker(o: WorkerOptions): Promise<number> {
  const modelFolders = [...(o.models ?? []), join(resourcesDir(), 'models'), join(dataDir(), 'models'), join(dataDir(), 'discriminators')];
  const password = o.redisPasswordFile ? (await readFile(o.redisPasswordFile, 'utf8')).trim() : undefined;
  const worker = await startWorker({
    redis: o.redis,
    redisPassword: password,
    concurrency: o.concurrency,
    threads: o.threads,
    executionProvider: o.provider,
    modelFolders,
    lockSeconds: o.lockSeconds,
    onLog: (line) => console.error(line),
  });
  console.error(`worker ready on ${new URL(o.redis).host} (concurrency ${o.concurrency}); Ctrl-C stops after the chunks in hand`);
  await new Promise<void>((done) => {
    const stop = () => {
      console.error('stopping: finishing the chunks in hand…');
      void worker.close().then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  console.error(`stopped after ${worker.done} chunk(s)`);
  return EXIT_OK;
}
