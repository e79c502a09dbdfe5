/**
 * A scale-out worker (`dg-studio worker`): takes translate chunks from the BullMQ queue, runs each with the
 * models it holds (loaded once and kept), and returns the PNGs through Redis. It writes nothing outside a
 * temporary folder, so killing it at any moment loses nothing: its chunk's lock expires and another worker
 * takes the chunk (BullMQ's stalled-job check). A message that is not a valid chunk, or names a model this
 * worker lacks, fails that job at once (no retries) with the reason, and the worker goes on.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join, resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { describeIssues } from '../../../shared/errors.js';
import { loadDiscriminator, type LoadedDiscriminator } from '../../engine/models/discriminator.js';
import { loadScoreModel, type ScoreModel } from '../../engine/models/score-model.js';
import type { ExecutionProvider } from '../../engine/onnx/session.js';
import { translateFiles } from '../translate-files.js';
import { ModelStore } from './model-store.js';
import { ChunkSchema, QUEUE_NAME, TRANSLATE_CHUNK, type Chunk, type ChunkResult, type ModelRef } from './protocol.js';
import { redisConnection, type RedisOptions } from './redis.js';

export interface WorkerOptions extends RedisOptions {
  /** chunks run at once (each on `threads` threads) */
  concurrency?: number;
  threads?: number;
  executionProvider?: ExecutionProvider;
  /** model folders, or folders of model folders, this worker may run */
  modelFolders: string[];
  /** seconds a chunk's lock lasts without renewal: how soon a killed worker's chunk is taken by another */
  lockSeconds?: number;
  onLog?: (line: string) => void;
}

export interface RunningWorker {
  /** chunks finished by this worker */
  readonly done: number;
  close(): Promise<void>;
}

/** A chunk's models as a worker keeps them: loaded, and the manifests they came from. */
interface WorkerModels {
  model: ScoreModel;
  discriminator: LoadedDiscriminator | null;
  manifest: string;
  discManifest: string | null;
}

export async function startWorker(opts: WorkerOptions): Promise<RunningWorker> {
  const store = new ModelStore(opts.modelFolders);
  const loaded = new Map<string, Promise<WorkerModels>>();
  const log = opts.onLog ?? (() => {});
  let done = 0;

  /** The chunk's models, loaded once per worker (a model the worker lacks: the job fails, naming it). */
  const modelsOf = (c: Chunk): Promise<WorkerModels> => {
    const key = `${c.model.digest}|${c.discriminator?.digest ?? ''}`;
    if (!loaded.has(key)) {
      const p = (async (): Promise<WorkerModels> => {
        const manifest = await findModel(store, c.model);
        const discManifest = c.discriminator ? await findModel(store, c.discriminator) : null;
        const session = { executionProvider: opts.executionProvider, threads: opts.threads };
        const model = await loadScoreModel(manifest, session);
        const discriminator = discManifest
          ? await loadDiscriminator(discManifest, { dataShape: model.manifest.dataShape, valueRange: model.manifest.valueRange }, session)
          : null;
        return { model, discriminator, manifest, discManifest };
      })();
      p.catch(() => loaded.delete(key));
      loaded.set(key, p);
    }
    return loaded.get(key)!;
  };

  const worker = new Worker(
    QUEUE_NAME,
    async (job: Job) => {
      if (job.name !== TRANSLATE_CHUNK) throw new UnrecoverableError(`unknown job kind "${String(job.name).slice(0, 60)}"`);
      const parsed = ChunkSchema.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`not a valid translate chunk: ${describeIssues(parsed.error, job.data)}`);
      const result = await runChunk(parsed.data, await modelsOf(parsed.data), opts, (p) => void job.updateProgress(p).catch(() => {}));
      done++;
      return result;
    },
    {
      connection: redisConnection(opts),
      concurrency: opts.concurrency ?? 1,
      lockDuration: (opts.lockSeconds ?? 30) * 1000,
      stalledInterval: Math.max(1000, ((opts.lockSeconds ?? 30) * 1000) / 2),
      // a chunk whose worker died is retried on another, several times over
      maxStalledCount: 10,
    },
  );
  worker.on('failed', (job, err) => log(`chunk ${job?.id ?? '?'} failed: ${err.message}`));
  worker.on('error', (err) => log(`queue: ${err.message}`));
  await worker.waitUntilReady();
  return {
    get done() {
      return done;
    },
    async close() {
      await worker.close();
      for (const p of loaded.values()) {
        const m = await p.catch(() => null);
        await m?.discriminator?.dispose();
        await m?.model.dispose();
      }
    },
  };
}

async function findModel(store: ModelStore, ref: ModelRef): Promise<string> {
  const manifest = await store.find(ref.digest);
  if (!manifest)
    throw new UnrecoverableError(
      `this worker has no model "${ref.name}" (folder digest ${ref.digest.slice(0, 12)}…): copy its folder into a folder given to the worker with --models`,
    );
  return manifest;
}

/** Translate one chunk in a temporary folder; the outputs come back as PNG bytes (base64). */
async function runChunk(c: Chunk, models: WorkerModels, opts: WorkerOptions, progress: (fraction: number) => void): Promise<ChunkResult> {
  const dir = await mkdtemp(join(tmpdir(), 'dg-worker-'));
  try {
    // positions in the name keep the chunk's order whatever the original names
    const files = c.items.map((it, i) => join(dir, `${String(i).padStart(4, '0')}${extname(it.name).slice(0, 10) || '.png'}`));
    await Promise.all(c.items.map((it, i) => writeFile(files[i]!, Buffer.from(it.data, 'base64'))));
    const sourceNames = Object.fromEntries(files.map((f, i) => [f, c.items[i]!.name]));
    const position = new Map(files.map((f, i) => [resolve(f), c.firstIndex + i]));
    const { outputs, errors } = await translateFiles(
      {
        inputs: files,
        outDir: join(dir, 'out'),
        params: c.params,
        modelManifest: models.manifest,
        discriminatorManifest: models.discManifest ?? undefined,
        executionProvider: opts.executionProvider,
        threads: opts.threads,
        sourceNames,
        firstIndex: c.firstIndex,
        preloaded: { model: models.model, discriminator: models.discriminator },
      },
      { onStep: (s) => progress((s.done + s.step / s.steps) / s.total) },
    );
    return {
      outputs: await Promise.all(
        outputs.map(async (o) => ({
          index: position.get(resolve(o.source))!,
          name: basename(o.output),
          png: (await readFile(o.output)).toString('base64'),
        })),
      ),
      errors: errors.map((e) => ({ index: position.get(resolve(e.file))!, message: e.message.replaceAll(dir, '…').slice(0, 2000) })),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
