/**
 * The submitting side of scale-out (`dg-studio translate … --queue redis://…`): split a batch into chunks,
 * put them on the BullMQ queue, follow them over all workers, and gather each output into the output folder
 * and the gallery exactly once:
 *
 * - chunk job ids are stable (`<run tag>-<chunk>`), so a resumed submitter adds nothing twice;
 * - an output is written under the name a single-machine run gives it, then recorded in the gallery; a source
 *   the gallery already has is skipped, and a file left by a crash between the two is recognised by what its
 *   PNG records (`sameOutput`) and adopted, never written a second time;
 * - a chunk is removed from Redis only after its outputs are gathered.
 */
import { createHash } from 'node:crypto';
import { readFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Job, Queue } from 'bullmq';
import { TranslateParamsSchema, type TranslateParams, type TranslateParamsInput } from '../../../shared/params.js';
import { ENGINE_VERSION } from '../../../shared/version.js';
import { readPngTextFromBuffer, writeFileAtomic } from '../../engine/io/image-io.js';
import { fileInManifestFolder } from '../../engine/models/manifest-files.js';
import { manifestPathOf, readJsonFile } from '../../engine/models/score-model.js';
import type { Gallery } from '../gallery.js';
import { expandInputs, sha256File } from '../translate-files.js';
import { sameOutput, type EmbeddedRecord } from '../translate-outputs.js';
import { digestOfFiles, fileDigests, modelFolderOf } from './model-store.js';
import { chunkJobId, ChunkResultSchema, QUEUE_NAME, TRANSLATE_CHUNK, type Chunk, type ChunkResult, type ModelRef } from './protocol.js';
import { redisConnection, type RedisOptions } from './redis.js';

export interface QueueTranslateRequest extends RedisOptions {
  inputs: string[];
  outDir: string;
  params: TranslateParamsInput;
  modelManifest: string;
  discriminatorManifest?: string | undefined;
  /** images per chunk; a multiple of params.batchSize keeps each model call the same as on one machine */
  chunkSize?: number;
  gallery?: Gallery | undefined;
  resumeRunId?: number | undefined;
  /** original names of inputs stored under other names (the studio's inbox keeps uploads under their digest) */
  sourceNames?: Record<string, string> | undefined;
  /** how often the submitter looks at its chunks (ms) */
  pollMs?: number;
}

export interface QueueProgress {
  done: number;
  total: number;
  /** chunks waiting, running, finished (not yet gathered) */
  waiting: number;
  active: number;
  workers: number;
  imagesPerSecond: number;
}

export interface QueueEvents {
  onStart?(info: { total: number; chunks: number; queued: number; runId: number | undefined }): void;
  onProgress?(p: QueueProgress): void;
  onResult?(r: { source: string; output: string; galleryId: number | undefined }): void;
  onError?(e: { file: string; message: string }): void;
  onWarning?(message: string): void;
}

/** A model as the queue names it (its folder's digest) and as the gallery records it (name, manifest, file digest). */
async function describeModel(manifestPath: string, digestOf: 'onnx' | 'manifest') {
  const m = (await readJsonFile(manifestPath, 'manifest')) as { name?: unknown; onnx?: unknown };
  const name = typeof m.name === 'string' ? m.name : basename(dirname(manifestPath));
  const file = digestOf === 'onnx' ? fileInManifestFolder(dirname(manifestPath), String(m.onnx), 'onnx') : manifestPath;
  const folder = modelFolderOf(manifestPath);
  // one read of each file serves the folder's identity and the file's own digest (a model's ONNX can be gigabytes)
  const files = await fileDigests(folder);
  const ref: ModelRef = { name, digest: digestOfFiles(files) };
  const own = dirname(resolve(file)) === resolve(folder) ? files.get(basename(file)) : undefined;
  return { ref, info: { name, manifest: resolve(manifestPath), sha256: own ?? (await sha256File(file)) } };
}

/** A readable line for a failed lookup or a Redis that is away (it is retried). */
const transient = (e: unknown) => /ECONNREFUSED|ECONNRESET|Connection is closed|ETIMEDOUT|EPIPE/i.test(String((e as Error)?.message));

/** A chunk of the batch: its number, the position of its first image, its files. */
interface ChunkPlan {
  k: number;
  first: number;
  files: string[];
}

/** What a queued run knows once set up (translateOnQueue): its images, models, gallery run and queue. */
interface RunContext {
  req: QueueTranslateRequest;
  events: QueueEvents;
  params: TranslateParams;
  files: string[];
  nameOf(file: string): string;
  model: ModelRef;
  discriminator: ModelRef | null;
  gallery: Gallery | undefined;
  runId: number | undefined;
  /** the run's tag: its chunks' job ids are `<tag>-<k>` */
  tag: string;
  queue: Queue;
}

/** A run on the queue after set-up: putting chunks on it, following them, gathering what comes back exactly once. */
class QueuedRun {
  outputs = 0;
  errors = 0;
  /** sources with a result (or an error) in the gallery run and the output folder */
  readonly have = new Set<string>();
  private readonly requeued = new Map<number, number>();

  constructor(private readonly c: RunContext) {}

  private seedOf(index: number): number {
    return (this.c.params.seed + index) % 2 ** 32;
  }

  /** Put a chunk on the queue (its sources read now, so the queue holds them and workers need no shared folder). */
  async enqueue(chunk: ChunkPlan): Promise<void> {
    const { params, tag, queue, nameOf } = this.c;
    const data: Chunk = {
      version: 1,
      run: tag,
      chunk: chunk.k,
      firstIndex: chunk.first,
      params,
      model: this.c.model,
      discriminator: this.c.discriminator,
      items: await Promise.all(chunk.files.map(async (f) => ({ name: nameOf(f), data: (await readFile(f)).toString('base64') }))),
    };
    await retrying(() =>
      queue.add(TRANSLATE_CHUNK, data, {
        jobId: chunkJobId(tag, chunk.k),
        attempts: 3,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: false,
        removeOnFail: false,
      }),
    );
  }

  /** Record a chunk's results: each output written and recorded once, each error once. */
  async gather(r: ChunkResult): Promise<void> {
    const { files, gallery, runId, events, nameOf, req } = this.c;
    for (const o of r.outputs) {
      const source = files[o.index];
      if (source === undefined || this.have.has(source)) continue;
      const png = Buffer.from(o.png, 'base64');
      const path = await placeOutput(req.outDir, basename(o.name), png);
      const embedded = JSON.parse(readPngTextFromBuffer(png)['dg-studio'] ?? '{}') as EmbeddedRecord & object;
      const galleryId =
        gallery && runId !== undefined
          ? await gallery.addOutput(runId, { png, sourcePath: source, sourceName: nameOf(source), seed: this.seedOf(o.index) })
          : undefined;
      await writeFileAtomic(path.replace(/\.png$/, '.json'), JSON.stringify({ ...embedded, galleryId, runId }, null, 2));
      this.have.add(source);
      this.outputs++;
      events.onResult?.({ source, output: path, galleryId });
    }
    for (const e of r.errors) {
      const source = files[e.index];
      if (source === undefined || this.have.has(source)) continue;
      if (gallery && runId !== undefined) gallery.addError(runId, source, this.seedOf(e.index), e.message, nameOf(source));
      this.have.add(source);
      this.errors++;
      events.onError?.({ file: source, message: e.message });
    }
  }

  /** One look at a pending chunk: gathered (and off the queue), or still waiting / running. */
  private async check(id: string, chunk: ChunkPlan): Promise<'gathered' | 'waiting' | 'active'> {
    const { queue, events } = this.c;
    // the state first, then the job: a job read while active and found finished a moment later has no result yet
    const state = await queue.getJobState(id);
    const finished = state === 'completed' || state === 'failed';
    const job = finished ? await Job.fromId(queue, id) : null;
    if (state === 'unknown' || (finished && !job)) {
      // gone from Redis (a restart without persistence, or removed by hand): put it back
      events.onWarning?.(`chunk ${chunk.k} vanished from the queue; adding it again`);
      await this.enqueue(chunk);
      return 'waiting';
    }
    if (!job) return state === 'active' ? 'active' : 'waiting';
    if (state === 'failed') {
      const message = job.failedReason || 'the chunk failed';
      await this.gather({ outputs: [], errors: chunk.files.map((_, i) => ({ index: chunk.first + i, message })) });
    } else {
      const parsed = ChunkResultSchema.safeParse(job.returnvalue);
      if (parsed.success) await this.gather(parsed.data);
    }
    await job.remove().catch(() => {});
    // a chunk that came back without all its sources (malformed, or short) is translated again, up to 3 times
    const missing = chunk.files.map((f, i) => ({ f, index: chunk.first + i })).filter((x) => !this.have.has(x.f));
    if (!missing.length) return 'gathered';
    const tries = this.requeued.get(chunk.k) ?? 0;
    if (tries < 3) {
      this.requeued.set(chunk.k, tries + 1);
      events.onWarning?.(`chunk ${chunk.k} came back without ${missing.length} of its images; queueing it again`);
      await this.enqueue(chunk);
      return 'waiting';
    }
    const message = 'the workers returned no result for this image (3 tries)';
    await this.gather({ outputs: [], errors: missing.map((m) => ({ index: m.index, message })) });
    return 'gathered';
  }

  /** Follow the chunks until each is gathered, with progress over all workers; cancelled: the rest leave the queue. */
  async follow(chunks: ChunkPlan[], signal: AbortSignal | undefined): Promise<void> {
    const { queue, events, tag, files, req } = this.c;
    const pending = new Map(chunks.map((c) => [chunkJobId(tag, c.k), c]));
    const started = Date.now();
    const startedDone = this.have.size;
    let workers = 0;
    let lastWorkers = 0;
    while (pending.size > 0) {
      if (signal?.aborted) {
        for (const id of pending.keys()) await (await queue.getJob(id))?.remove().catch(() => {});
        throw Object.assign(new Error('cancelled'), { name: 'CancelledError' });
      }
      const counts = { waiting: 0, active: 0 };
      try {
        for (const [id, c] of [...pending]) {
          const seen = await this.check(id, c);
          if (seen === 'gathered') pending.delete(id);
          else counts[seen]++;
        }
        if (Date.now() - lastWorkers > 2000) {
          workers = (await queue.getWorkers()).length;
          lastWorkers = Date.now();
        }
      } catch (e) {
        if (!transient(e)) throw e;
        events.onWarning?.(`Redis is unreachable (${(e as Error).message}); retrying`);
      }
      const seconds = (Date.now() - started) / 1000;
      const rate = seconds > 0 ? (this.have.size - startedDone) / seconds : 0;
      events.onProgress?.({ done: this.have.size, total: files.length, ...counts, workers, imagesPerSecond: rate });
      if (pending.size > 0) await new Promise((r) => setTimeout(r, req.pollMs ?? 250));
    }
  }
}

export async function translateOnQueue(
  req: QueueTranslateRequest,
  events: QueueEvents = {},
  signal?: AbortSignal,
): Promise<{ runId: number | undefined; outputs: number; errors: number }> {
  const params: TranslateParams = TranslateParamsSchema.parse(req.params);
  const files = (await expandInputs(req.inputs)).map((f) => resolve(f));
  const given = new Map(Object.entries(req.sourceNames ?? {}).map(([k, v]) => [resolve(k), v]));
  const model = await describeModel(manifestPathOf(req.modelManifest), 'onnx');
  const guided = params.dgWeight > 0 || (params.dgWeight2 ?? 0) > 0;
  const disc = req.discriminatorManifest && guided ? await describeModel(manifestPathOf(req.discriminatorManifest), 'manifest') : null;
  const gallery = req.gallery;
  let runId: number | undefined;
  let done = new Set<string>();
  if (gallery && req.resumeRunId !== undefined) {
    if (!gallery.run(req.resumeRunId)) throw new Error(`the gallery has no run ${req.resumeRunId}`);
    runId = req.resumeRunId;
    done = gallery.doneSources(runId);
    gallery.resumeRun(runId);
  } else if (gallery) {
    const info = { params, inputs: files, model: model.info, discriminator: disc?.info ?? null, engineVersion: ENGINE_VERSION };
    runId = gallery.startRun(info);
  }
  // stable for a gallery run (a resumed submitter finds its chunks again); random without a gallery
  const tag = createHash('sha256')
    .update(gallery && runId !== undefined ? `${resolve(gallery.dir)}|${runId}` : `${Date.now()}|${Math.random()}`)
    .digest('hex')
    .slice(0, 16);
  const size = req.chunkSize ?? params.batchSize * 4;
  const chunks: ChunkPlan[] = [];
  for (let first = 0, k = 0; first < files.length; first += size, k++) chunks.push({ k, first, files: files.slice(first, first + size) });
  const todo = chunks.filter((c) => c.files.some((f) => !done.has(f)));

  const queue = new Queue(QUEUE_NAME, { connection: redisConnection(req) });
  queue.on('error', () => {}); // reconnections are retried; a lasting failure surfaces from the calls
  await mkdir(req.outDir, { recursive: true });
  const run = new QueuedRun({
    req,
    events,
    params,
    files,
    nameOf: (f) => given.get(f) ?? basename(f),
    model: model.ref,
    discriminator: disc?.ref ?? null,
    gallery,
    runId,
    tag,
    queue,
  });
  for (const s of done) run.have.add(s);
  try {
    for (const c of todo) await run.enqueue(c);
    // chunks a crashed submitter had gathered but not yet removed
    for (const c of chunks) if (!todo.includes(c)) await queue.remove(chunkJobId(tag, c.k)).catch(() => 0);
    events.onStart?.({ total: files.length, chunks: chunks.length, queued: todo.length, runId });
    await run.follow(todo, signal);
    if (gallery && runId !== undefined) gallery.finishRun(runId, 'done');
    return { runId, outputs: run.outputs, errors: run.errors };
  } catch (e) {
    if (gallery && runId !== undefined) gallery.finishRun(runId, (e as Error).name === 'CancelledError' ? 'cancelled' : 'failed');
    throw e;
  } finally {
    await queue.close().catch(() => {});
  }
}

/** Retry a queue call while Redis is away (a restart), up to a minute. */
async function retrying<T>(call: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await call();
    } catch (e) {
      if (!transient(e) || i >= 60) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * Where an output goes: the name a single-machine run gives it; if a file of that name is there already and
 * records the same output (a crash after writing, before the gallery row), it is kept and not written again;
 * if it records another output, the next free `-k` name.
 */
async function placeOutput(outDir: string, name: string, png: Buffer): Promise<string> {
  const mine = JSON.parse(readPngTextFromBuffer(png)['dg-studio'] ?? '{}') as EmbeddedRecord;
  for (let k = 0; ; k++) {
    const path = join(outDir, k === 0 ? name : name.replace(/\.png$/, `-${k}.png`));
    let there: Buffer;
    try {
      there = await readFile(path);
    } catch {
      await writeFileAtomic(path, png);
      return path;
    }
    let theirs: EmbeddedRecord = {};
    try {
      theirs = JSON.parse(readPngTextFromBuffer(there)['dg-studio'] ?? '{}') as EmbeddedRecord;
    } catch {
      // not one of ours: the next name
    }
    if (sameOutput(theirs, mine)) return path;
  }
}
