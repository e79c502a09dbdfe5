/**
 * A discriminator's training data (dg-math §6: real = targets; fake = sources, their unguided SDEdit
 * translations over the t0 range, and fakes made elsewhere), split into training and validation by file
 * name: for a pixel score model here, for a latent (Stable Diffusion-family) model through
 * latent-training-sets.ts. Used by trainDiscriminator (discriminator-training.ts).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { sdeditLadder, sdeditParamsOf } from '../engine/sampling/sdedit.js';
import { TranslateParamsSchema } from '../../shared/params.js';
import type { OnnxDiscriminatorManifest } from '../../shared/manifest.js';
import type { ImageSpec } from '../engine/io/image-io.js';
import { lvpTimeFromSigmaVe } from '../engine/models/schedules.js';
import { loadDiscriminator, type LoadedDiscriminator } from '../engine/models/discriminator.js';
import { loadScoreModel, type ScoreModel } from '../engine/models/score-model.js';
import type { Critic } from '../engine/sampling/guidance.js';
import { translateBatch } from '../engine/sampling/translate.js';
import type { TrainDiscriminatorRequest, TrainEvents } from './discriminator-training.js';
import { nextRound, packageFiles } from './discriminator-package.js';
import { latentTrainingSets, type LatentSets } from './latent-training-sets.js';
import { cachedFloats, fakeT0, isValidation, readImageSet, VALIDATION_SALT } from './training-images.js';
import { expandInputs, imageSpecOf, sha256File } from './translate-files.js';

/** The discriminator an iterated round's fakes are guided by (dg-math §10), with its weight and an identity for the cache. */
export interface FakesGuide {
  critic: Critic;
  weight: number;
  /** content hash of the guiding package: a change of it makes new fakes */
  key: string;
}

/**
 * SDEdit translations of sources (dg-math §6), cached on disk by content: without DG, or — for an iterated round
 * (dg-math §10) — guided by the rounds before it.
 */
async function translations(
  model: ScoreModel,
  modelSha: string,
  sources: { file: string; data: Float32Array }[],
  req: Required<Pick<TrainDiscriminatorRequest, 't0Range' | 'translationsPerSource' | 'translationSteps' | 'seed'>>,
  cacheDir: string,
  spec: ImageSpec,
  events: TrainEvents,
  signal?: AbortSignal,
  guide?: FakesGuide,
): Promise<Float32Array[]> {
  const k = req.translationsPerSource;
  if (k === 0) return []; // the fakes are given (--translations 0): nothing to make, nothing to report
  await mkdir(cacheDir, { recursive: true });
  const size = spec.channels * spec.height * spec.width;
  const out: Float32Array[] = [];
  let done = 0;
  for (const [si, src] of sources.entries()) {
    const contentSha = createHash('sha256')
      .update(Buffer.from(src.data.buffer, src.data.byteOffset, src.data.byteLength))
      .digest('hex');
    for (let ti = 0; ti < k; ti++) {
      const t0 = fakeT0(req.t0Range, k, si, ti);
      const seed = (req.seed + si * k + ti) % 2 ** 32;
      // the fakes are what a user gets: the default sampler (stochastic, seeded), no guidance (or the earlier rounds')
      const params = TranslateParamsSchema.parse({ t0, steps: req.translationSteps, dgWeight: guide?.weight ?? 0 });
      // the σ ladder too: a manifest's ladder floor (dg-math §8) changes the fakes, not the ONNX file
      const ladder = sdeditLadder(model.schedule, sdeditParamsOf(params)).join(',');
      const key = createHash('sha256')
        .update(
          `${modelSha}:${contentSha}:${t0}:${seed}:${req.translationSteps}:${params.sampler}:${ladder}${guide ? `:${guide.key}:${guide.weight}` : ''}`,
        )
        .digest('hex')
        .slice(0, 24);
      const translate = async () => {
        const result = await translateBatch(model, { data: src.data, shape: [1, spec.channels, spec.height, spec.width] }, params, {
          seeds: [seed],
          critic: guide?.critic,
          signal,
        });
        return Float32Array.from(result.data, (v) => Math.max(spec.valueRange[0], Math.min(spec.valueRange[1], v)));
      };
      out.push(await cachedFloats(join(cacheDir, `${key}.f32`), size, translate));
    }
    if (++done % 10 === 0 || done === sources.length)
      events.onStage?.(`${guide ? 'guided' : 'unguided'} translations: ${done}/${sources.length} sources`);
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
  guide?: FakesGuide,
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
    events.onStage?.(
      `making ${guide ? `DG-guided (w ${guide.weight})` : 'unguided'} SDEdit translations of the sources (t0 ${t0Lo}…${t0Hi}, cached in ${cacheDir})`,
    );
  const classOf = new Map<Float32Array, number>();
  for (const set of [sources, targets]) for (const s of set) classOf.set(s.data, classOfFile.get(s.file) ?? 0);
  const translated = async (set: { file: string; data: Float32Array }[]) => {
    const out = await translations(model, modelSha, set, tr, cacheDir, spec, events, signal, guide);
    // translations come out in source order, translationsPerSource each: they keep their source's class
    out.forEach((x, i) => classOf.set(x, classOfFile.get(set[Math.floor(i / tr.translationsPerSource)]!.file) ?? 0));
    return out;
  };
  const extra = split(req.extraFakes?.length ? await readImageSet(await expandInputs(req.extraFakes), spec, events.onWarning) : []);
  if (req.classes && extra.train.length + extra.val.length > 0)
    throw new Error('extra fakes are not supported for class-conditional training');
  // an iterated round learns what the earlier rounds' guidance left (dg-math §10): the sources were round 1's fakes
  const sourcesAsFakes = (set: { data: Float32Array }[]) => (guide ? [] : set.map((s) => s.data));
  const fakeTrain = [...sourcesAsFakes(src.train), ...(await translated(src.train)), ...extra.train.map((s) => s.data)];
  const fakeVal = [...sourcesAsFakes(src.val), ...(await translated(src.val)), ...extra.val.map((s) => s.data)];
  const realTrain = tgt.train.map((s) => s.data);
  const realVal = tgt.val.map((s) => s.data);
  const extraCount = extra.train.length + extra.val.length;
  return { classNames, classOf, modelSha, tr, extraCount, realTrain, realVal, fakeTrain, fakeVal };
}

/** What the trainer needs of its data: a pixel score model's sets, or a latent model's (latent-training-sets.ts). */
export interface TrainingData {
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
  /** an iterated round (dg-math §10): the weight its fakes were guided with */
  guidedBy?: { weight: number } | undefined;
  /** an iterated round: the package it refines (read and checked once, before the run; its package is written from it) */
  refines?: { manifestPath: string; manifest: OnnxDiscriminatorManifest } | undefined;
  dispose(): Promise<void>;
}

export async function pixelTrainingData(req: TrainDiscriminatorRequest, events: TrainEvents, signal?: AbortSignal): Promise<TrainingData> {
  const model = await loadScoreModel(req.modelManifest, {
    executionProvider: req.executionProvider,
    threads: req.threads,
    onWarning: events.onWarning,
  });
  let guiding: LoadedDiscriminator | null = null;
  try {
    let guide: FakesGuide | undefined;
    let refines: TrainingData['refines'];
    if (req.refine) {
      if (req.classes) throw new Error('an iterated round (--refine) of a class-conditional discriminator is not supported');
      guiding = await loadDiscriminator(
        req.refine.discriminator,
        { dataShape: model.manifest.dataShape, valueRange: model.manifest.valueRange },
        { executionProvider: req.executionProvider, threads: req.threads, onWarning: events.onWarning },
      );
      // refused before the run, not after it: the package written is this one plus the new round, in a folder of its own
      if (guiding.manifest.kind !== 'onnx')
        throw new Error(`"${guiding.manifestPath}" is not an ONNX discriminator: only those can take more rounds`);
      if (resolve(dirname(guiding.manifestPath)) === resolve(req.outDir))
        throw new Error(`--out "${req.outDir}" is the folder of the discriminator it refines: give the new round its own folder`);
      nextRound(guiding.manifestPath, guiding.manifest);
      refines = { manifestPath: guiding.manifestPath, manifest: guiding.manifest };
      guide = {
        critic: guiding.critic,
        weight: req.refine.weight ?? guiding.manifest.recommendedWeight ?? 1,
        key: await packageKey(guiding),
      };
    }
    const sets = await trainingSets(req, model, imageSpecOf(model), events, signal, guide);
    await guiding?.dispose();
    guiding = null;
    return {
      ...sets,
      ...(guide ? { guidedBy: { weight: guide.weight }, refines } : {}),
      model: { name: model.manifest.name, sha256: sets.modelSha },
      dataShape: model.manifest.dataShape,
      valueRange: model.manifest.valueRange,
      tauMax: Math.min(1, lvpTimeFromSigmaVe(model.schedule.sigmaAt(req.t0Range[1]))),
      translationsPerSource: sets.tr.translationsPerSource,
      dispose: () => model.dispose(),
    };
  } catch (e) {
    await guiding?.dispose();
    await model.dispose();
    throw e;
  }
}

/** A discriminator package's identity: its manifest and every ONNX file it names, by content. */
async function packageKey(d: LoadedDiscriminator): Promise<string> {
  const base = dirname(d.manifestPath);
  const files = d.manifest.kind === 'onnx' ? packageFiles(d.manifest) : [];
  const hash = createHash('sha256').update(await readFile(d.manifestPath));
  for (const f of files) hash.update(await sha256File(join(base, f)));
  return hash.digest('hex').slice(0, 24);
}

/** A Stable Diffusion-family folder: the discriminator learns on its latents (issue 27). */
export async function latentTrainingData(req: TrainDiscriminatorRequest, events: TrainEvents, signal?: AbortSignal): Promise<TrainingData> {
  if (req.classes || req.extraFakes?.length || req.frozenFeatures || req.refine)
    throw new Error(
      `"${req.modelManifest}" is a latent model: class-conditional training, extra fakes, frozen features and iterated rounds are not supported for it`,
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
