/**
 * Translate image files: expand files and folders, run batches, write PNGs with their
 * parameters embedded plus a JSON sidecar. One unreadable image is recorded and skipped;
 * the rest of the batch goes on.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { safeFileStem } from './folders.js';
import { TranslateParamsSchema, formatParametersLine, type TranslateParams, type TranslateParamsInput } from '../../shared/params.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { loadClassifier, type LoadedClassifier } from '../engine/models/classifier.js';
import { loadDiscriminator, type LoadedDiscriminator } from '../engine/models/discriminator.js';
import {
  encodePixelsPng,
  readImageAndBytes,
  readPngTextFromBuffer,
  restoreAspect,
  writeFileAtomic,
  type FitGeometry,
  type ImageSpec,
} from '../engine/io/image-io.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { loadScoreModel, type ScoreModel } from '../engine/models/score-model.js';
import { networkEvaluations } from '../engine/sampling/samplers.js';
import type { Tensor } from '../engine/tensor.js';
import { translateBatch } from '../engine/sampling/translate.js';
import type { Gallery } from './gallery.js';
import { t0RangeProblem } from '../../shared/manifest.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.avif'];

export interface TranslateFilesRequest {
  inputs: string[];
  outDir: string;
  params: TranslateParamsInput;
  modelManifest: string;
  discriminatorManifest?: string | undefined;
  executionProvider?: ExecutionProvider | undefined;
  threads?: number | undefined;
  /** record every result (and every per-image error) in this gallery */
  gallery?: Gallery | undefined;
  /** continue an interrupted gallery run: sources it already has are skipped */
  resumeRunId?: number | undefined;
  /** name outputs after their inputs (`cat.jpg` → `cat.png` + `cat.json`) instead of `<stem>-t…-w…-<seed>` */
  keepNames?: boolean | undefined;
  /** a classifier for classifier guidance toward params.classLabel (paper Eq. 6) */
  classifierManifest?: string | undefined;
  /**
   * original file names of inputs stored under other names (the studio keeps uploads under their
   * digest): outputs are named, captioned and searchable by these
   */
  sourceNames?: Record<string, string> | undefined;
  /** models a long-lived caller (a queue worker) keeps loaded between calls: used as they are and not disposed */
  preloaded?: { model: ScoreModel; discriminator: LoadedDiscriminator | null } | undefined;
  /** the position of `inputs`' first image in a larger batch (a queue chunk): seeds are params.seed + position */
  firstIndex?: number | undefined;
}

/** A model as an output records it: its name, manifest path and the sha256 of its file. */
export interface ModelInfo {
  name: string;
  manifest: string;
  sha256: string;
}

export interface OutputRecord {
  galleryId?: number;
  runId?: number | undefined;
  source: string;
  output: string;
  sidecar: string;
  seed: number;
  params: TranslateParams;
  model: ModelInfo;
  discriminator: ModelInfo | null;
  classifier?: (ModelInfo & { className: string }) | null;
  engineVersion: string;
  createdAt: string;
}

export interface FileError {
  file: string;
  message: string;
}

export interface TranslateEvents {
  onStart?(info: {
    total: number;
    model: string;
    discriminator: string | null;
    classifier: string | null;
    provider: string;
    /** steps the ladder really has over [0, t0] (a discrete model merges repeated steps) */
    steps: number;
    /** score-network evaluations per image (networkEvaluations) */
    evaluations: number;
  }): void;
  onStep?(info: { done: number; total: number; step: number; steps: number; preview?: Tensor }): void;
  onResult?(r: OutputRecord): void;
  onError?(e: FileError): void;
  onWarning?(message: string): void;
}

/** Image files named by the inputs: files as given, folders' images sorted by name. */
export async function expandInputs(inputs: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const input of inputs) {
    let info;
    try {
      info = await stat(input);
    } catch {
      throw new Error(`input "${input}" does not exist`);
    }
    if (info.isDirectory()) {
      const names = (await readdir(input)).filter((n) => IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())).sort();
      if (names.length === 0) throw new Error(`folder "${input}" holds no images (${IMAGE_EXTENSIONS.join(' ')})`);
      files.push(...names.map((n) => join(input, n)));
    } else files.push(input);
  }
  if (files.length === 0) throw new Error('no input images given');
  return files;
}

export async function sha256File(path: string): Promise<string> {
  return sha256Hex(await readFile(path));
}

/** Hex SHA-256 of bytes already in memory (a source read once for its pixels and its digest). */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function imageSpecOf(model: ScoreModel): ImageSpec {
  const [c, h, w] = model.manifest.dataShape;
  if (model.manifest.dataShape.length !== 3 || (c !== 1 && c !== 3)) {
    throw new Error(
      `score model "${model.manifest.name}" has dataShape [${model.manifest.dataShape.join(', ')}]; images need [1 or 3, height, width]`,
    );
  }
  return { channels: c, height: h!, width: w!, valueRange: model.manifest.valueRange };
}

/**
 * What an output carries about itself (PNG chunk, sidecar): names and digests, never a path — a
 * shared PNG must not tell where the user keeps files; the gallery keeps where they are.
 */
export function shareableRecord(r: OutputRecord, sourceName: string, sourceSha256: string) {
  const named = <T extends { manifest: string }>(m: T) => {
    const { manifest: _where, ...rest } = m;
    return rest;
  };
  return {
    source: sourceName,
    sourceSha256,
    output: basename(r.output),
    seed: r.seed,
    params: r.params,
    model: named(r.model),
    discriminator: r.discriminator ? named(r.discriminator) : null,
    ...(r.classifier ? { classifier: named(r.classifier) } : {}),
    engineVersion: r.engineVersion,
    createdAt: r.createdAt,
  };
}

/** The first of stem.png, stem-1.png, … that is neither on disk nor `taken` by this run: an output never overwrites. */
export async function freeName(dir: string, stem: string, taken: Set<string>): Promise<string> {
  for (let k = 0; ; k++) {
    const name = k === 0 ? `${stem}.png` : `${stem}-${k}.png`;
    if (taken.has(name)) continue;
    try {
      await stat(join(dir, name));
    } catch {
      taken.add(name);
      return name;
    }
  }
}

/** What writing one output needs of its run. */
interface OutputContext {
  req: TranslateFilesRequest;
  params: TranslateParams;
  spec: ImageSpec;
  modelInfo: ModelInfo;
  discInfo: ModelInfo | null;
  classifierInfo: (ModelInfo & { className: string }) | null;
  gallery: Gallery | undefined;
  runId: number | undefined;
  /** output names given in this run */
  taken: Set<string>;
  events: TranslateEvents;
}
interface LoadedSource {
  file: string;
  index: number;
  sha256: string;
  /** where the image lies in the model's frame (params.fit), to bring the output back to its aspect */
  geometry: FitGeometry;
}

/** An output's record and the PNG's parameter texts (A1111's line and the full record), before its file is named. */
function describeOutput(o: OutputContext, l: LoadedSource, seed: number) {
  const sourceName = o.req.sourceNames?.[l.file] ?? basename(l.file);
  const record: OutputRecord = {
    runId: o.runId,
    source: resolve(l.file),
    output: '',
    sidecar: '',
    seed,
    params: { ...o.params, seed },
    model: o.modelInfo,
    discriminator: o.discInfo,
    ...(o.classifierInfo ? { classifier: o.classifierInfo } : {}),
    engineVersion: ENGINE_VERSION,
    createdAt: new Date().toISOString(),
  };
  // bounded and sanitised: a long non-ASCII name must not fail the batch (ENAMETOOLONG)
  const inputStem = safeFileStem(basename(sourceName, extname(sourceName)));
  const stem = o.req.keepNames ? inputStem : `${inputStem}-t${o.params.t0}-w${o.params.dgWeight}-${seed}`;
  return { record, sourceName, stem };
}

/** Write one output: the PNG (atomically), its gallery row, then its sidecar. */
async function saveOutput(o: OutputContext, l: LoadedSource, seed: number, pixels: Float32Array): Promise<OutputRecord> {
  const { record, sourceName, stem } = describeOutput(o, l, seed);
  const name = await freeName(o.req.outDir, stem, o.taken);
  if (o.req.keepNames && name !== `${stem}.png`)
    o.events.onWarning?.(`"${stem}.png" is taken in ${o.req.outDir} (an earlier run or another input of that name): ${l.file} → ${name}`);
  record.output = join(resolve(o.req.outDir), name);
  record.sidecar = record.output.replace(/\.png$/, '.json');
  const { modelInfo, discInfo, classifierInfo } = o;
  const line = formatParametersLine(record.params, {
    Model: modelInfo.name,
    'Model hash': modelInfo.sha256.slice(0, 10),
    ...(discInfo ? { Discriminator: discInfo.name, 'Discriminator hash': discInfo.sha256.slice(0, 10) } : {}),
    ...(classifierInfo
      ? { Classifier: classifierInfo.name, 'Classifier hash': classifierInfo.sha256.slice(0, 10), 'Class name': classifierInfo.className }
      : {}),
    Size: `${o.spec.width}x${o.spec.height}`,
    Version: `dg-studio ${ENGINE_VERSION}`,
  });
  const embedded = shareableRecord(record, sourceName, l.sha256);
  const out = await restoreAspect(pixels, o.spec, l.geometry, o.params.outputSize === 'source');
  const png = await encodePixelsPng(
    out.pixels,
    { width: out.width, height: out.height, channels: o.spec.channels },
    { parameters: `Source: ${sourceName}\n${line}`, 'dg-studio': JSON.stringify(embedded) },
  );
  await writeFileAtomic(record.output, png);
  return recordOutput(o, record, sourceName, png, embedded);
}

/** The gallery row and the sidecar of an output whose PNG is written. */
async function recordOutput(o: OutputContext, record: OutputRecord, sourceName: string, png: Uint8Array, embedded: object) {
  if (o.gallery && o.runId !== undefined)
    record.galleryId = await o.gallery.addOutput(o.runId, { png, sourcePath: record.source, sourceName, seed: record.seed });
  await writeFileAtomic(record.sidecar, JSON.stringify({ ...embedded, galleryId: record.galleryId, runId: o.runId }, null, 2));
  return record;
}

/** What an output's PNG records of itself (its `dg-studio` text). */
export interface EmbeddedRecord {
  sourceSha256?: string;
  seed?: number;
  params?: unknown;
  source?: string;
}

/** Two records of the same output: the same source bytes and name, seed and parameters (not the time it was made). */
export function sameOutput(a: EmbeddedRecord, b: EmbeddedRecord): boolean {
  return (
    a.sourceSha256 === b.sourceSha256 && a.seed === b.seed && a.source === b.source && JSON.stringify(a.params) === JSON.stringify(b.params)
  );
}

/**
 * On resume: the output of this source a crash left on disk without its gallery row (the PNG is written
 * before the row), recognised by what its PNG records — the same source bytes, seed and parameters — and
 * adopted instead of translated again and written a second time under another name. Null when there is none.
 */
async function adoptOutput(o: OutputContext, l: LoadedSource, seed: number): Promise<OutputRecord | null> {
  const { record, sourceName, stem } = describeOutput(o, l, seed);
  const path = join(resolve(o.req.outDir), `${stem}.png`);
  let png: Buffer;
  let embedded: EmbeddedRecord;
  try {
    png = await readFile(path);
    embedded = JSON.parse(readPngTextFromBuffer(png)['dg-studio'] ?? 'null') ?? {};
  } catch {
    return null;
  }
  if (!sameOutput(embedded, { sourceSha256: l.sha256, seed, source: sourceName, params: record.params })) return null;
  o.taken.add(`${stem}.png`);
  record.output = path;
  record.sidecar = path.replace(/\.png$/, '.json');
  return recordOutput(o, record, sourceName, png, embedded);
}

/**
 * A batch's sources read for the model (an unreadable one recorded as an error, the run going on); on resume,
 * outputs a crash left without their gallery row adopted instead of translated again. `settled`: how many of
 * the batch need no translation (errors and adoptions).
 */
async function readBatch(
  o: OutputContext,
  batch: { file: string; index: number }[],
  outputs: OutputRecord[],
  errors: FileError[],
): Promise<{ loaded: (LoadedSource & { data: Float32Array })[]; settled: number }> {
  const { req, params, gallery, runId, events } = o;
  const loaded: (LoadedSource & { data: Float32Array })[] = [];
  let settled = 0;
  for (const { file, index } of batch) {
    try {
      const { data, bytes, geometry } = await readImageAndBytes(file, o.spec, params.fit);
      loaded.push({ file, index, data, sha256: sha256Hex(bytes), geometry });
    } catch (e) {
      const err = { file, message: (e as Error).message };
      errors.push(err);
      if (gallery && runId !== undefined)
        gallery.addError(runId, resolve(file), (params.seed + index) % 2 ** 32, err.message, req.sourceNames?.[file]);
      events.onError?.(err);
      settled++;
    }
  }
  if (req.resumeRunId === undefined) return { loaded, settled };
  // a resumed run adopts the outputs a crash left without their gallery row (written, then killed)
  const fresh: (LoadedSource & { data: Float32Array })[] = [];
  for (const l of loaded) {
    const adopted = await adoptOutput(o, l, (params.seed + l.index) % 2 ** 32);
    if (!adopted) {
      fresh.push(l);
      continue;
    }
    outputs.push(adopted);
    events.onResult?.(adopted);
    settled++;
  }
  return { loaded: fresh, settled };
}

/**
 * The guides a run asks for, loaded for this score model: the discriminator (DG) and the classifier (CG). Asked
 * for without their model, a weight is dropped with a warning, so what is recorded is what was done.
 */
async function loadGuides(
  req: TranslateFilesRequest,
  model: ScoreModel,
  asked: TranslateParams,
  events: TranslateEvents,
): Promise<{ disc: LoadedDiscriminator | null; classifier: LoadedClassifier | null; params: TranslateParams }> {
  let params = asked;
  const session = { executionProvider: req.executionProvider, threads: req.threads, onWarning: events.onWarning };
  let disc: LoadedDiscriminator | null = null;
  if (req.discriminatorManifest && req.preloaded?.discriminator) disc = req.preloaded.discriminator;
  else if (req.discriminatorManifest) {
    const data = { dataShape: model.manifest.dataShape, valueRange: model.manifest.valueRange };
    disc = await loadDiscriminator(req.discriminatorManifest, data, session);
  } else if (params.dgWeight > 0 || (params.dgWeight2 ?? 0) > 0) {
    // what is recorded (file names, PNG parameters, gallery) must be what was done: plain SDEdit
    events.onWarning?.(`DG weight ${params.dgWeight} was given but no discriminator: translating without guidance (recorded as w = 0)`);
    params = { ...params, dgWeight: 0, dgWeight2: null, boosting: null };
  }
  if (!(req.classifierManifest && params.cgWeight > 0)) {
    if (params.cgWeight > 0) {
      events.onWarning?.(
        `CG weight ${params.cgWeight} was given but no classifier: translating without classifier guidance (recorded as 0)`,
      );
      params = { ...params, cgWeight: 0 };
    }
    return { disc, classifier: null, params };
  }
  try {
    if (params.classLabel === null)
      throw new Error('classifier guidance needs a class: give the class label (--class-label k) the classifier should push toward');
    const classifier = await loadClassifier(req.classifierManifest, params.classLabel, session);
    if (classifier.manifest.dataShape.join('x') !== model.manifest.dataShape.join('x')) {
      await classifier.dispose();
      throw new Error(
        `classifier "${classifier.manifestPath}" works on data of shape [${classifier.manifest.dataShape.join(', ')}], but the score model's is [${model.manifest.dataShape.join(', ')}]`,
      );
    }
    return { disc, classifier, params };
  } catch (e) {
    if (disc && !req.preloaded) await disc.dispose();
    throw e;
  }
}

export async function translateFiles(
  req: TranslateFilesRequest,
  events: TranslateEvents = {},
  signal?: AbortSignal,
): Promise<{ outputs: OutputRecord[]; errors: FileError[] }> {
  let params = TranslateParamsSchema.parse(req.params);
  const files = await expandInputs(req.inputs);
  const model =
    req.preloaded?.model ??
    (await loadScoreModel(req.modelManifest, {
      executionProvider: req.executionProvider,
      threads: req.threads,
      onWarning: events.onWarning,
    }));
  let disc: LoadedDiscriminator | null = null;
  let classifier: LoadedClassifier | null = null;
  try {
    const spec = imageSpecOf(model);
    const outOfRange = t0RangeProblem(model.manifest, params.t0);
    if (outOfRange) throw new Error(outOfRange);
    ({ disc, classifier, params } = await loadGuides(req, model, params, events));
    await mkdir(req.outDir, { recursive: true });
    const modelInfo = { name: model.manifest.name, manifest: resolve(req.modelManifest), sha256: await sha256File(model.onnxPath) };
    const discInfo = disc
      ? { name: disc.manifest.name, manifest: resolve(disc.manifestPath), sha256: await sha256File(disc.manifestPath) }
      : null;
    const classifierInfo = classifier
      ? {
          name: classifier.manifest.name,
          manifest: resolve(classifier.manifestPath),
          sha256: await sha256File(classifier.manifestPath),
          className: classifier.manifest.classes[params.classLabel!]!,
        }
      : null;
    const ladderSteps = model.schedule.sdeditSigmas(params.t0, params.steps, params.spacing).length - 1;
    events.onStart?.({
      total: files.length,
      model: modelInfo.name,
      discriminator: discInfo?.name ?? null,
      classifier: classifierInfo ? `${classifierInfo.name}: ${classifierInfo.className}` : null,
      provider: model.session.provider,
      steps: ladderSteps,
      evaluations: networkEvaluations(params.sampler, ladderSteps),
    });

    const outputs: OutputRecord[] = [];
    const errors: FileError[] = [];
    const taken = new Set<string>();
    const gallery = req.gallery;
    let runId: number | undefined;
    let skip = new Set<string>();
    if (gallery && req.resumeRunId !== undefined) {
      const run = gallery.run(req.resumeRunId);
      if (!run) throw new Error(`gallery has no run ${req.resumeRunId}`);
      runId = run.id;
      skip = gallery.doneSources(run.id);
      gallery.resumeRun(run.id);
    } else if (gallery) {
      runId = gallery.startRun({
        params,
        inputs: files.map((f) => resolve(f)),
        model: modelInfo,
        discriminator: discInfo,
        engineVersion: ENGINE_VERSION,
      });
    }
    const first = req.firstIndex ?? 0;
    const todo = files.map((file, i) => ({ file, index: first + i })).filter((f) => !skip.has(resolve(f.file)));
    const out: OutputContext = { req, params, spec, modelInfo, discInfo, classifierInfo, gallery, runId, taken, events };
    try {
      const item = spec.channels * spec.height * spec.width;
      let done = 0;
      for (let start = 0; start < todo.length; start += params.batchSize) {
        const { loaded, settled } = await readBatch(out, todo.slice(start, start + params.batchSize), outputs, errors);
        done += settled;
        if (loaded.length === 0) continue;
        const sources: Tensor = {
          data: new Float32Array(loaded.length * item),
          shape: [loaded.length, spec.channels, spec.height, spec.width],
        };
        loaded.forEach((l, i) => sources.data.set(l.data, i * item));
        const seeds = loaded.map((l) => (params.seed + l.index) % 2 ** 32);
        const result = await translateBatch(model, sources, params, {
          seeds,
          critic: disc?.critic,
          classifier: classifier?.critic,
          signal,
          onStep: (s) => events.onStep?.({ done, total: files.length, step: s.stepIndex + 1, steps: s.totalSteps, preview: s.denoised }),
        });
        for (const [i, l] of loaded.entries()) {
          const record = await saveOutput(out, l, seeds[i]!, result.data.subarray(i * item, (i + 1) * item));
          outputs.push(record);
          events.onResult?.(record);
          done++;
        }
      }
      if (gallery && runId !== undefined) gallery.finishRun(runId, 'done');
      return { outputs, errors };
    } catch (e) {
      if (gallery && runId !== undefined) gallery.finishRun(runId, (e as Error).name === 'CancelledError' ? 'cancelled' : 'failed');
      throw e;
    }
  } finally {
    await classifier?.dispose();
    if (!req.preloaded) {
      await disc?.dispose();
      await model.dispose();
    }
  }
}
