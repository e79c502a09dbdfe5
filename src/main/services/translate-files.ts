/**
 * Translate image files: expand files and folders, run batches, write PNGs with their
 * parameters embedded plus a JSON sidecar. One unreadable image is recorded and skipped;
 * the rest of the batch goes on.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { sdeditLadder, sdeditParamsOf } from '../engine/sampling/sdedit.js';
import { TranslateParamsSchema, type TranslateParams, type TranslateParamsInput } from '../../shared/params.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { loadClassifier, type LoadedClassifier } from '../engine/models/classifier.js';
import { loadDiscriminator, type LoadedDiscriminator } from '../engine/models/discriminator.js';
import type { ImageSpec } from '../engine/io/image-io.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { loadScoreModel, type ScoreModel } from '../engine/models/score-model.js';
import { networkEvaluations } from '../engine/sampling/samplers.js';
import type { Tensor } from '../engine/tensor.js';
import { translateBatch } from '../engine/sampling/translate.js';
import type { Gallery } from './gallery.js';
import { readBatch, saveOutput, type FileError, type OutputContext, type OutputRecord } from './translate-outputs.js';
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

/** The models a run records (name, manifest, digest), and the run's start as the caller sees it. */
async function describeRun(
  req: TranslateFilesRequest,
  model: ScoreModel,
  disc: LoadedDiscriminator | null,
  classifier: LoadedClassifier | null,
  params: TranslateParams,
) {
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
  return { modelInfo, discInfo, classifierInfo };
}

/** The gallery run the outputs go to: a new one, or the interrupted one being resumed (its finished sources skipped). */
function openGalleryRun(
  req: TranslateFilesRequest,
  files: string[],
  params: TranslateParams,
  info: Awaited<ReturnType<typeof describeRun>>,
): { runId: number | undefined; skip: Set<string> } {
  const gallery = req.gallery;
  if (!gallery) return { runId: undefined, skip: new Set() };
  if (req.resumeRunId !== undefined) {
    const run = gallery.run(req.resumeRunId);
    if (!run) throw new Error(`gallery has no run ${req.resumeRunId}`);
    gallery.resumeRun(run.id);
    return { runId: run.id, skip: gallery.doneSources(run.id) };
  }
  const runId = gallery.startRun({
    params,
    inputs: files.map((f) => resolve(f)),
    model: info.modelInfo,
    discriminator: info.discInfo,
    engineVersion: ENGINE_VERSION,
  });
  return { runId, skip: new Set() };
}

/** The sources in batches of params.batchSize: read, translated (one seed per source), each output saved as it comes. */
async function translateInBatches(
  o: OutputContext,
  model: ScoreModel,
  guides: { disc: LoadedDiscriminator | null; classifier: LoadedClassifier | null },
  todo: { file: string; index: number }[],
  total: number,
  signal: AbortSignal | undefined,
): Promise<{ outputs: OutputRecord[]; errors: FileError[] }> {
  const { params, spec, events } = o;
  const outputs: OutputRecord[] = [];
  const errors: FileError[] = [];
  const item = spec.channels * spec.height * spec.width;
  let done = 0;
  for (let start = 0; start < todo.length; start += params.batchSize) {
    const { loaded, settled } = await readBatch(o, todo.slice(start, start + params.batchSize), outputs, errors);
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
      critic: guides.disc?.critic,
      classifier: guides.classifier?.critic,
      signal,
      onStep: (s) => events.onStep?.({ done, total, step: s.stepIndex + 1, steps: s.totalSteps, preview: s.denoised }),
    });
    for (const [i, l] of loaded.entries()) {
      const record = await saveOutput(o, l, seeds[i]!, result.data.subarray(i * item, (i + 1) * item));
      outputs.push(record);
      events.onResult?.(record);
      done++;
    }
  }
  return { outputs, errors };
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
    const info = await describeRun(req, model, disc, classifier, params);
    const ladderSteps = sdeditLadder(model.schedule, sdeditParamsOf(params)).length - 1;
    events.onStart?.({
      total: files.length,
      model: info.modelInfo.name,
      discriminator: info.discInfo?.name ?? null,
      classifier: info.classifierInfo ? `${info.classifierInfo.name}: ${info.classifierInfo.className}` : null,
      provider: model.session.provider,
      steps: ladderSteps,
      evaluations: networkEvaluations(params.sampler, ladderSteps),
    });
    const { gallery } = req;
    const { runId, skip } = openGalleryRun(req, files, params, info);
    const first = req.firstIndex ?? 0;
    const todo = files.map((file, i) => ({ file, index: first + i })).filter((f) => !skip.has(resolve(f.file)));
    const out: OutputContext = { req, params, spec, ...info, gallery, runId, taken: new Set(), events };
    try {
      const result = await translateInBatches(out, model, { disc, classifier }, todo, files.length, signal);
      if (gallery && runId !== undefined) gallery.finishRun(runId, 'done');
      return result;
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
