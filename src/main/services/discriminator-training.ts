/**
 * Train a source-vs-target discriminator from two folders and a target score model, and
 * write a discriminator package (forward ONNX, guidance ONNX, manifest) that `translate`
 * loads (dg-math §6: real = target; fake = source ∪ unguided SDEdit translations).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import type { DiscriminatorManifest } from '../../shared/manifest.js';
import { TranslateParamsSchema } from '../../shared/params.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { writeFileAtomic, type ImageSpec } from '../engine/io/image-io.js';
import { buildDiscriminatorNet, DEFAULT_ARCH, type BuiltNet, type ConvEncoderArch } from '../engine/nn/discriminator-net.js';
import { buildFrozenFeatureNet, FROZEN_FEATURES_HEAD, type FrozenFeaturesArch } from '../engine/nn/frozen-features.js';
import { buildGuidanceModel } from '../engine/models/onnx-critic.js';
import { serializeModel, type OnnxModel } from '../engine/onnx/ir.js';
import { loadDiscriminator } from '../engine/models/discriminator.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { lvpTimeFromSigmaVe } from '../engine/models/schedules.js';
import { loadScoreModel, type ScoreModel } from '../engine/models/score-model.js';
import { DiscriminatorTrainer, type BandStats } from '../engine/train/discriminator-trainer.js';
import { runTrainingLoop } from '../engine/train/loop.js';
import { waitWhilePaused, type PauseFlag } from './jobs.js';
import type { RatioLoss } from '../engine/train/training-graph.js';
import { translateBatch } from '../engine/sampling/translate.js';
import { loadDiscriminatorCheckpoint, saveDiscriminatorCheckpoint } from './discriminator-checkpoint.js';
import { expandInputs, imageSpecOf, sha256File } from './translate-files.js';
import { latentTrainingSets, type LatentSets } from './latent-training-sets.js';
import { cachedFloats, readImageSet, spreadT0s } from './training-images.js';
import { isDiffusersFolder } from '../engine/models/diffusers-folder.js';

export interface TrainDiscriminatorRequest {
  /** raised while interactive work runs (jobs.ts): the training waits between steps */
  pauseFlag?: PauseFlag | undefined;
  modelManifest: string;
  sources: string[];
  targets: string[];
  outDir: string;
  /** t0 range the user plans to translate with: fake translations span it, τ ≤ its top */
  t0Range: [number, number];
  steps?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  loss?: RatioLoss;
  timeSampling?: 'importance' | 'uniform';
  translationsPerSource?: number;
  translationSteps?: number;
  /**
   * more fake images, e.g. unguided translations made elsewhere (tools/device-train.sh makes them
   * on the GPU with the score model it trains); split like the rest by file name
   */
  extraFakes?: string[] | undefined;
  valFraction?: number;
  seed?: number;
  channels?: number[];
  /** average-pool images by this factor inside the discriminator */
  downsample?: number;
  /**
   * class-conditional: each source and target folder holds one subfolder per class (the same
   * names on both sides); the discriminator learns d(x, τ, class)
   */
  classes?: boolean;
  /** the paper's design: a frozen feature extractor (ONNX) cut at a tensor, plus a trained head */
  frozenFeatures?: { onnx: string; tensor: string; time?: FrozenFeaturesArch['timeInput'] } | undefined;
  evalEvery?: number;
  checkpointEvery?: number;
  resume?: boolean;
  /**
   * start from the weights of an earlier run of the same architecture (its output folder, e.g. one
   * pre-trained on sources alone before the score model existed); step and optimizer start fresh
   */
  init?: string | undefined;
  executionProvider?: ExecutionProvider;
  threads?: number;
  /**
   * a Stable Diffusion-family folder as the model: the square side images are read at (default 512) and the
   * prompt, negative prompt and CFG scale its unguided translations (the fakes) are made with
   */
  latent?: { imageSize?: number; prompt?: string; negativePrompt?: string; cfgScale?: number } | undefined;
}

export interface TrainEvents {
  onStage?(message: string): void;
  onProgress?(p: { step: number; steps: number; loss: number; lossEma: number; itemsPerSecond: number }): void;
  onEval?(e: { step: number; accuracy: number; loss: number; bands: BandStats[] }): void;
  onWarning?(message: string): void;
}

export interface TrainResult {
  manifestPath: string;
  steps: number;
  validation: { accuracy: number; loss: number; bands: BandStats[] };
  cancelled: boolean;
}

/**
 * A stable split by file name: FNV-1a of the salt and the basename, so it is the same on every
 * machine. Data sets are split with no salt (tools/prepare-emoji.ts); the trainer's validation
 * split uses its own salt, so it is not empty on a folder that is itself one side of such a split.
 */
export function isValidation(file: string, fraction: number, salt = ''): boolean {
  let h = 0x811c9dc5;
  for (const ch of salt + basename(file)) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32 < fraction;
}

/** The trainer's validation split (see isValidation). */
export const VALIDATION_SALT = 'dg-studio/validation:';

/** SDEdit translations of sources without DG (dg-math §6), cached on disk by content. */
async function unguidedTranslations(
  model: ScoreModel,
  modelSha: string,
  sources: { file: string; data: Float32Array }[],
  req: Required<Pick<TrainDiscriminatorRequest, 't0Range' | 'translationsPerSource' | 'translationSteps' | 'seed'>>,
  cacheDir: string,
  spec: ImageSpec,
  events: TrainEvents,
  signal?: AbortSignal,
): Promise<Float32Array[]> {
  const k = req.translationsPerSource;
  if (k === 0) return []; // the fakes are given (--translations 0): nothing to make, nothing to report
  await mkdir(cacheDir, { recursive: true });
  const t0s = spreadT0s(req.t0Range, k);
  const size = spec.channels * spec.height * spec.width;
  const out: Float32Array[] = [];
  let done = 0;
  for (const [si, src] of sources.entries()) {
    const contentSha = createHash('sha256')
      .update(Buffer.from(src.data.buffer, src.data.byteOffset, src.data.byteLength))
      .digest('hex');
    for (const [ti, t0] of t0s.entries()) {
      const seed = (req.seed + si * k + ti) % 2 ** 32;
      const key = createHash('sha256')
        .update(`${modelSha}:${contentSha}:${t0}:${seed}:${req.translationSteps}:heun`)
        .digest('hex')
        .slice(0, 24);
      const params = TranslateParamsSchema.parse({ t0, steps: req.translationSteps, sampler: 'heun', dgWeight: 0 });
      const translate = async () => {
        const result = await translateBatch(model, { data: src.data, shape: [1, spec.channels, spec.height, spec.width] }, params, {
          seeds: [seed],
          signal,
        });
        return Float32Array.from(result.data, (v) => Math.max(spec.valueRange[0], Math.min(spec.valueRange[1], v)));
      };
      out.push(await cachedFloats(join(cacheDir, `${key}.f32`), size, translate));
    }
    if (++done % 10 === 0 || done === sources.length) events.onStage?.(`unguided translations: ${done}/${sources.length} sources`);
  }
  return out;
}

/**
 * The inputs, with class labels for class-conditional training: <folder>/<class>/<images>, the class
 * names present under both the sources and the targets (otherwise the folders as given).
 */
async function classedInputs(req: TrainDiscriminatorRequest) {
  const classOfFile = new Map<string, number>();
  if (!req.classes) return { classNames: undefined, classOfFile, sourceInputs: req.sources, targetInputs: req.targets };
  const subdirs = async (dirs: string[]) => {
    const names = new Set<string>();
    for (const d of dirs) for (const e of await readdir(d, { withFileTypes: true })) if (e.isDirectory()) names.add(e.name);
    return names;
  };
  const [s, t] = [await subdirs(req.sources), await subdirs(req.targets)];
  const classNames = [...s].filter((c) => t.has(c)).sort();
  if (classNames.length < 2)
    throw new Error('class-conditional training needs at least two class subfolders present in both the source and the target folders');
  const expand = async (dirs: string[]) => {
    const all: string[] = [];
    for (const d of dirs) {
      for (const [k, c] of classNames.entries()) {
        const files = await expandInputs([join(d, c)]).catch(() => [] as string[]);
        files.forEach((f) => classOfFile.set(f, k));
        all.push(...files);
      }
    }
    return all;
  };
  return { classNames, classOfFile, sourceInputs: await expand(req.sources), targetInputs: await expand(req.targets) };
}

/** The network to train: a head on a frozen feature extractor (the paper's design), or the conv encoder. */
async function buildNetwork(
  req: TrainDiscriminatorRequest,
  spec: { channels: number; height: number; width: number },
  classNames: string[] | undefined,
  seed: number,
): Promise<{ arch: ConvEncoderArch | FrozenFeaturesArch; net: BuiltNet }> {
  if (req.frozenFeatures) {
    const arch: FrozenFeaturesArch = {
      kind: 'frozen-features',
      featureOnnx: req.frozenFeatures.onnx,
      featureTensor: req.frozenFeatures.tensor,
      ...(req.frozenFeatures.time ? { timeInput: req.frozenFeatures.time } : {}),
      ...FROZEN_FEATURES_HEAD,
    };
    let bytes: Uint8Array;
    try {
      bytes = await readFile(req.frozenFeatures.onnx);
    } catch (e) {
      throw new Error(`cannot read feature extractor "${req.frozenFeatures.onnx}": ${(e as Error).message}`, { cause: e });
    }
    return { arch, net: await buildFrozenFeatureNet(arch, bytes, [spec.channels, spec.height, spec.width], seed) };
  }
  const conv: ConvEncoderArch = {
    ...DEFAULT_ARCH,
    inChannels: spec.channels,
    resolution: spec.height,
    channels: req.channels ?? DEFAULT_ARCH.channels,
    attentionAt: DEFAULT_ARCH.attentionAt.filter((r) => r < spec.height),
    downsample: req.downsample ?? DEFAULT_ARCH.downsample ?? 1,
    classes: classNames?.length ?? 0,
  };
  const divisor = 2 ** (conv.channels.length - 1) * (conv.downsample ?? 1);
  if (spec.height !== spec.width || spec.height % divisor !== 0)
    throw new Error(`the discriminator needs square images whose size divides by ${divisor}; the model's are ${spec.width}×${spec.height}`);
  return { arch: conv, net: buildDiscriminatorNet(conv, seed) };
}

/** Start from an earlier run's weights (--init: fresh step and optimizer) or resume this run's checkpoint; returns --init's step. */
async function startFrom(trainer: DiscriminatorTrainer, req: TrainDiscriminatorRequest, events: TrainEvents): Promise<number> {
  if (req.init && !req.resume) {
    const from = await loadDiscriminatorCheckpoint(req.init);
    if (!from) throw new Error(`--init "${req.init}" holds no checkpoint of a discriminator run (checkpoint.safetensors)`);
    try {
      trainer.restore({ ...trainer.checkpoint(), params: from.params });
    } catch (e) {
      throw new Error(`--init "${req.init}": ${(e as Error).message}`, { cause: e });
    }
    events.onStage?.(`initialized from ${req.init} (its step ${from.step})`);
    return from.step;
  }
  if (req.resume) {
    const ck = await loadDiscriminatorCheckpoint(req.outDir);
    if (ck) {
      trainer.restore(ck);
      events.onStage?.(`resumed from step ${ck.step}`);
    } else events.onWarning?.(`no checkpoint in ${req.outDir}: starting fresh`);
  }
  return 0;
}

/**
 * The real and fake sets, split into training and validation by file name (dg-math §6: real = targets;
 * fake = sources, their unguided SDEdit translations over the t0 range, and fakes made elsewhere), with each
 * image's class for class-conditional training.
 */
async function trainingSets(
  req: TrainDiscriminatorRequest,
  model: ScoreModel,
  spec: ImageSpec,
  events: TrainEvents,
  signal: AbortSignal | undefined,
) {
  const seed = req.seed ?? 0;
  const valFraction = req.valFraction ?? 0.1;
  const [t0Lo, t0Hi] = req.t0Range;
  const { classNames, classOfFile, sourceInputs, targetInputs } = await classedInputs(req);
  const [sourceFiles, targetFiles] = [await expandInputs(sourceInputs), await expandInputs(targetInputs)];
  events.onStage?.(`reading ${sourceFiles.length} source and ${targetFiles.length} target images`);
  const sources = await readImageSet(sourceFiles, spec, events.onWarning);
  const targets = await readImageSet(targetFiles, spec, events.onWarning);
  const split = <T extends { file: string }>(set: T[]) => {
    const val = set.filter((s) => isValidation(s.file, valFraction, VALIDATION_SALT));
    const train = set.filter((s) => !isValidation(s.file, valFraction, VALIDATION_SALT));
    // keep at least one of each
    if (val.length === 0 && train.length > 1) val.push(train.pop()!);
    return { train, val };
  };
  const src = split(sources);
  const tgt = split(targets);
  if (src.train.length === 0 || tgt.train.length === 0)
    throw new Error('need at least two readable images in each of the source and target folders');

  const modelSha = await sha256File(model.onnxPath);
  const tr = {
    t0Range: req.t0Range,
    translationsPerSource: req.translationsPerSource ?? 1,
    translationSteps: req.translationSteps ?? 10,
    seed,
  };
  const cacheDir = join(req.outDir, 'cache');
  if (tr.translationsPerSource > 0)
    events.onStage?.(`making unguided SDEdit translations of the sources (t0 ${t0Lo}…${t0Hi}, cached in ${cacheDir})`);
  const classOf = new Map<Float32Array, number>();
  for (const set of [sources, targets]) for (const s of set) classOf.set(s.data, classOfFile.get(s.file) ?? 0);
  const translated = async (set: { file: string; data: Float32Array }[]) => {
    const out = await unguidedTranslations(model, modelSha, set, tr, cacheDir, spec, events, signal);
    // translations come out in source order, translationsPerSource each: they keep their source's class
    out.forEach((x, i) => classOf.set(x, classOfFile.get(set[Math.floor(i / tr.translationsPerSource)]!.file) ?? 0));
    return out;
  };
  const extra = split(req.extraFakes?.length ? await readImageSet(await expandInputs(req.extraFakes), spec, events.onWarning) : []);
  if (req.classes && extra.train.length + extra.val.length > 0)
    throw new Error('extra fakes are not supported for class-conditional training');
  const fakeTrain = [...src.train.map((s) => s.data), ...(await translated(src.train)), ...extra.train.map((s) => s.data)];
  const fakeVal = [...src.val.map((s) => s.data), ...(await translated(src.val)), ...extra.val.map((s) => s.data)];
  const realTrain = tgt.train.map((s) => s.data);
  const realVal = tgt.val.map((s) => s.data);
  const extraCount = extra.train.length + extra.val.length;
  return { classNames, classOf, modelSha, tr, extraCount, realTrain, realVal, fakeTrain, fakeVal };
}

/** What the trainer needs of its data: a pixel score model's sets, or a latent model's (latent-training-sets.ts). */
interface TrainingData {
  model: { name: string; sha256: string };
  dataShape: number[];
  valueRange: [number, number];
  /** dg-math §6: only τ ≤ t0 matters for image-to-image; t0 is in the score model's time */
  tauMax: number;
  realTrain: Float32Array[];
  realVal: Float32Array[];
  fakeTrain: Float32Array[];
  fakeVal: Float32Array[];
  classNames: string[] | undefined;
  classOf: Map<Float32Array, number>;
  translationsPerSource: number;
  extraCount: number;
  /** the latent space a latent discriminator was trained in (its package records it) */
  latent?: LatentSets['record'] | undefined;
  dispose(): Promise<void>;
}

async function pixelTrainingData(req: TrainDiscriminatorRequest, events: TrainEvents, signal?: AbortSignal): Promise<TrainingData> {
  const model = await loadScoreModel(req.modelManifest, {
    executionProvider: req.executionProvider,
    threads: req.threads,
    onWarning: events.onWarning,
  });
  try {
    const sets = await trainingSets(req, model, imageSpecOf(model), events, signal);
    return {
      ...sets,
      model: { name: model.manifest.name, sha256: sets.modelSha },
      dataShape: model.manifest.dataShape,
      valueRange: model.manifest.valueRange,
      tauMax: Math.min(1, lvpTimeFromSigmaVe(model.schedule.sigmaAt(req.t0Range[1]))),
      translationsPerSource: sets.tr.translationsPerSource,
      dispose: () => model.dispose(),
    };
  } catch (e) {
    await model.dispose();
    throw e;
  }
}

/** A Stable Diffusion-family folder: the discriminator learns on its latents (issue 27). */
async function latentTrainingData(req: TrainDiscriminatorRequest, events: TrainEvents, signal?: AbortSignal): Promise<TrainingData> {
  if (req.classes || req.extraFakes?.length || req.frozenFeatures)
    throw new Error(
      `"${req.modelManifest}" is a latent model: class-conditional training, extra fakes and frozen features are not supported for it`,
    );
  const valFraction = req.valFraction ?? 0.1;
  const translationsPerSource = req.translationsPerSource ?? 1;
  const sets = await latentTrainingSets(
    {
      modelFolder: req.modelManifest,
      sources: req.sources,
      targets: req.targets,
      outDir: req.outDir,
      t0Range: req.t0Range,
      imageSize: req.latent?.imageSize ?? 512,
      translationsPerSource,
      translationSteps: req.translationSteps ?? 10,
      text: { prompt: req.latent?.prompt ?? '', negativePrompt: req.latent?.negativePrompt ?? '', cfgScale: req.latent?.cfgScale ?? 1 },
      seed: req.seed ?? 0,
      isValidation: (f) => isValidation(f, valFraction, VALIDATION_SALT),
      executionProvider: req.executionProvider,
      threads: req.threads,
    },
    events,
    signal,
  );
  return {
    ...sets,
    valueRange: [-1, 1],
    tauMax: Math.min(1, lvpTimeFromSigmaVe(sets.sigmaAt(req.t0Range[1]))),
    classNames: undefined,
    classOf: new Map(),
    translationsPerSource,
    extraCount: 0,
    latent: sets.record,
    dispose: async () => {},
  };
}

/** The discriminator package of a finished (or cancelled) training: its ONNX graphs and a manifest with the record. */
async function writePackage(
  req: TrainDiscriminatorRequest,
  trainer: DiscriminatorTrainer,
  data: TrainingData,
  r: { arch: unknown; paramCount: number; batchSize: number; validation: unknown; cancelled: boolean; initStep: number },
): Promise<string> {
  let initFrom: { folder: string; step: number } | undefined;
  if (req.init && !req.resume) initFrom = { folder: relative(resolve(req.outDir), resolve(req.init)) || '.', step: r.initStep };
  return writeDiscriminatorPackage(req.outDir, trainer.exportForward({ 'dg-studio': 'discriminator' }), {
    name: `${basename(req.outDir)} (trained discriminator)`,
    description: `source-vs-target discriminator for ${data.latent ? 'the latents of ' : ''}"${data.model.name}", trained in DG Studio ${ENGINE_VERSION}`,
    dataShape: data.dataShape,
    valueRange: data.valueRange,
    ...(data.classNames ? { classes: data.classNames } : {}),
    training: {
      architecture: r.arch,
      parameters: r.paramCount,
      steps: trainer.step,
      ...(initFrom ? { initFrom } : {}),
      batchSize: r.batchSize,
      loss: req.loss ?? 'bce',
      tauRange: [1e-5, data.tauMax],
      t0Range: req.t0Range,
      data: {
        realTrain: data.realTrain.length,
        fakeTrain: data.fakeTrain.length,
        realVal: data.realVal.length,
        fakeVal: data.fakeVal.length,
        translationsPerSource: data.translationsPerSource,
        extraFakes: data.extraCount,
      },
      scoreModel: data.model,
      ...(data.latent ? { latentModel: data.latent } : {}),
      validation: r.validation,
      cancelled: r.cancelled,
      createdAt: new Date().toISOString(),
    },
  });
}

export async function trainDiscriminator(
  req: TrainDiscriminatorRequest,
  events: TrainEvents = {},
  signal?: AbortSignal,
): Promise<TrainResult> {
  const seed = req.seed ?? 0;
  const [t0Lo, t0Hi] = req.t0Range;
  if (!(t0Lo > 0 && t0Lo <= t0Hi && t0Hi <= 1)) throw new Error(`--t0 range must be lo,hi with 0 < lo ≤ hi ≤ 1, got ${t0Lo},${t0Hi}`);
  const latent = isDiffusersFolder(req.modelManifest);
  const data = latent ? await latentTrainingData(req, events, signal) : await pixelTrainingData(req, events, signal);
  let trainer: DiscriminatorTrainer | null = null;
  try {
    const { realTrain, realVal, fakeTrain, fakeVal, classNames, classOf, tauMax } = data;
    const [channels, height, width] = data.dataShape as [number, number, number];
    const spec = { channels, height, width };
    // latents are already the VAE's compressed view: no pooling by default
    const { arch, net } = await buildNetwork(latent ? { ...req, downsample: req.downsample ?? 1 } : req, spec, classNames, seed);
    const batchSize = req.batchSize ?? 32;
    const steps = req.epochs ? Math.ceil((req.epochs * (realTrain.length + fakeTrain.length)) / batchSize) : (req.steps ?? 2000);
    trainer = await DiscriminatorTrainer.create(net, data.dataShape, {
      loss: req.loss ?? 'bce',
      batchSize,
      lr: req.lr ?? 2e-3,
      tauRange: [1e-5, tauMax],
      timeSampling: req.timeSampling ?? 'importance',
      seed,
      // a mirrored latent is not the latent of the mirrored image
      hflip: !latent,
      classOf: classNames ? (x) => classOf.get(x) ?? 0 : undefined,
      session: { executionProvider: req.executionProvider, threads: req.threads, onWarning: events.onWarning },
    });
    const initStep = await startFrom(trainer, req, events);
    events.onStage?.(
      `training a ${(net.paramCount / 1e6).toFixed(2)}M-parameter discriminator on ${trainer.provider}: ${realTrain.length} real, ${fakeTrain.length} fake, τ ≤ ${tauMax.toFixed(3)}, ${steps} steps of ${batchSize}`,
    );
    const evalEvery = req.evalEvery ?? 250;
    const checkpointEvery = req.checkpointEvery ?? 500;
    let validation = await trainer.evaluate(realVal, fakeVal, 4);
    const t = trainer;
    const pause = req.pauseFlag;
    const { cancelled } = await runTrainingLoop({
      step: () => t.step,
      trainStep: () => t.trainStep(realTrain, fakeTrain),
      itemsPerStep: batchSize,
      until: { steps },
      pause: () => waitWhilePaused(pause, signal),
      lossEmaDecay: 0.95,
      reportEveryMs: 500,
      onProgress: (p) => events.onProgress?.({ step: p.step, steps, loss: p.loss, lossEma: p.lossEma, itemsPerSecond: p.itemsPerSecond }),
      evaluate: {
        every: { steps: evalEvery },
        atLastStep: true,
        run: async () => {
          validation = await t.evaluate(realVal, fakeVal, 4);
          events.onEval?.({ step: t.step, ...validation });
        },
      },
      checkpoint: { every: { steps: checkpointEvery }, run: () => saveDiscriminatorCheckpoint(req.outDir, t.checkpoint()) },
      signal,
    });
    await saveDiscriminatorCheckpoint(req.outDir, trainer.checkpoint());

    const manifestPath = await writePackage(req, trainer, data, {
      arch,
      paramCount: net.paramCount,
      batchSize,
      validation,
      cancelled,
      initStep,
    });
    return { manifestPath, steps: trainer.step, validation, cancelled };
  } finally {
    await trainer?.dispose();
    await data.dispose();
  }
}

type PackageFields = Pick<
  DiscriminatorManifest & { kind: 'onnx' },
  'name' | 'description' | 'dataShape' | 'valueRange' | 'classes' | 'training'
>;

/** A discriminator package: forward.onnx, its guidance graph, and the manifest (trainer conventions: x_vp, τ, logit). */
async function writeDiscriminatorPackage(outDir: string, forward: OnnxModel, fields: PackageFields): Promise<string> {
  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(join(outDir, 'forward.onnx'), serializeModel(forward));
  await writeFileAtomic(join(outDir, 'guidance.onnx'), serializeModel(buildGuidanceModel(forward, { x: 'x', output: 'logit' }, 'logit')));
  const manifest: DiscriminatorManifest = {
    format: 'dg-studio/discriminator@1',
    kind: 'onnx',
    onnx: 'forward.onnx',
    guidanceOnnx: 'guidance.onnx',
    io: { x: 'x', t: 't', output: 'logit' },
    output: 'logit',
    timeInput: { kind: 't', scale: 1 },
    timeDType: 'float32',
    coordinates: 'vp',
    lvp: { betaMin: 0.1, betaMax: 20 },
    ...fields,
  };
  const manifestPath = join(outDir, 'manifest.json');
  await writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2));
  return manifestPath;
}

/**
 * A usable discriminator package from a run folder that holds only the trainer's checkpoint and its
 * record (training.json or manifest.json): e.g. tools/pretrained/twemoji-vs-noto-disc. The manifest
 * records where the weights came from (folder, step). Checked by loading it (and a dry run).
 */
export async function exportDiscriminator(runDir: string, outDir: string, name?: string): Promise<{ manifestPath: string; step: number }> {
  let record: Record<string, unknown> | undefined;
  for (const f of ['training.json', 'manifest.json']) {
    try {
      const j = JSON.parse(await readFile(join(runDir, f), 'utf8')) as Record<string, unknown>;
      record = f === 'training.json' ? j : (j['training'] as Record<string, unknown> | undefined);
      if (record) break;
    } catch {
      // try the next
    }
  }
  const arch = record?.['architecture'] as ConvEncoderArch | FrozenFeaturesArch | undefined;
  if (!record || !arch)
    throw new Error(`"${runDir}" holds no training record (training.json, or a manifest.json with "training.architecture")`);
  if (arch.kind !== 'conv-encoder')
    throw new Error(
      `"${runDir}": only the trainer's own conv-encoder discriminators can be exported this way (this one is "${arch.kind}")`,
    );
  const ck = await loadDiscriminatorCheckpoint(runDir);
  if (!ck) throw new Error(`"${runDir}" holds no checkpoint (checkpoint.safetensors, or an older run's checkpoint/state.json)`);
  const net = buildDiscriminatorNet(arch);
  const initializers = new Map(net.model.graph.initializers);
  for (const p of net.params) {
    const w = ck.params[p];
    const init = initializers.get(p)!;
    if (!w || w.length !== init.data.length)
      throw new Error(`"${runDir}": the checkpoint does not match its recorded architecture (parameter "${p}")`);
    initializers.set(p, { ...init, data: w });
  }
  const forward: OnnxModel = {
    ...net.model,
    graph: { ...net.model.graph, initializers },
    metadata: { ...net.model.metadata, 'dg-studio': 'discriminator' },
  };
  const classes = (record['classes'] as string[] | undefined) ?? undefined;
  const manifestPath = await writeDiscriminatorPackage(outDir, forward, {
    name: name ?? `${basename(resolve(runDir))} (step ${ck.step})`,
    description: `exported by DG Studio ${ENGINE_VERSION} from the checkpoint in ${basename(resolve(runDir))} at step ${ck.step}`,
    dataShape: [arch.inChannels, arch.resolution, arch.resolution],
    valueRange: [-1, 1],
    ...(classes ? { classes } : {}),
    training: {
      ...record,
      steps: ck.step,
      exportedFrom: { folder: relative(resolve(outDir), resolve(runDir)) || '.', step: ck.step, exportedAt: new Date().toISOString() },
    },
  });
  await (await loadDiscriminator(manifestPath)).dispose();
  return { manifestPath, step: ck.step };
}
