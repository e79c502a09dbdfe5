/**
 * Train a target score model (ε U-Net) from a folder of images, in the app's own trainer
 * (ONNX Runtime, no Python), and write a model package — model.onnx with the EMA weights and a
 * manifest — that `translate` loads unchanged. Checkpoints (safetensors: weights, EMA, Adam
 * moments, training record) are written atomically every few minutes and on cancel; `resume`
 * continues exactly. A checkpoint of tools/train-score-model.py with the same architecture is
 * accepted too (the same parameter names).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import sharp from 'sharp';
import { imageGrid, readImage, writeFileAtomic, type ImageSpec } from '../engine/io/image-io.js';
import { buildUNet, DEFAULT_UNET_ARCH, unetArchProblem, unetParameterCount, type UNetArch } from '../engine/nn/unet.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { decodeSafetensors, encodeSafetensors, type StFile } from '../engine/io/safetensors.js';
import {
  checkpointArch,
  checkpointNoiseHistory,
  checkpointPrecond,
  DEFAULT_SCORE_TRAINING,
  ScoreTrainer,
  type ScorePrecond,
} from '../engine/train/score-trainer.js';
import { EDM_NOISE_DEFAULT, type EdmNoiseLevels } from '../engine/train/edm-precond.js';
import { runTrainingLoop } from '../engine/train/loop.js';
import { denoisingPreview, sdeditPreview } from '../engine/train/score-previews.js';
import { waitWhilePaused, type PauseFlag } from './jobs.js';
import { isValidation } from './training-images.js';
import type { DenoisingLevel } from '../engine/models/model-check.js';
import { writeScorePackage } from './score-package.js';
import { expandInputs } from './translate-files.js';

export const EVAL_TIMES = [0.2, 0.35, 0.5, 0.8];
export const PREVIEW_TIMES = [0.2, 0.5, 0.8];
export const CHECKPOINT_FILE = 'checkpoint.safetensors';

export interface TrainScoreModelRequest {
  /** raised while interactive work runs (jobs.ts): the training waits between steps */
  pauseFlag?: PauseFlag | undefined;
  /** target-domain images: folders and/or files */
  data: string[];
  outDir: string;
  /** held-out target images for the denoising error (default: 5 % of the data, split by name) */
  heldout?: string[] | undefined;
  /** source-domain images: the preview adds their SDEdit translations by the model in training */
  previewSources?: string[] | undefined;
  arch?: Partial<UNetArch>;
  batchSize?: number;
  lr?: number;
  warmupSteps?: number;
  emaDecay?: number;
  tMax?: number;
  /**
   * what the U-Net learns (dg-math §9): ε (default), or EDM's preconditioned F with ln σ ~ N(noise.pMean, noise.pStd²)
   * — exported as the same ε network either way; a resumed run keeps its checkpoint's, an --init run takes its
   */
  precond?: ScorePrecond | undefined;
  /** EDM's training noise levels, each over the checkpoint's last, else EDM's N(−1.2, 1.2²); a stretch may change them */
  noise?: Partial<EdmNoiseLevels> | undefined;
  /** stop after this many steps in all */
  steps?: number | undefined;
  /** stop after this many minutes of this run */
  minutes?: number | undefined;
  resume?: boolean;
  /** start from the weights of a checkpoint file of either trainer (same architecture) */
  init?: string | undefined;
  checkpointMinutes?: number;
  evalMinutes?: number;
  evalCount?: number;
  seed?: number;
  name?: string | undefined;
  /** the manifest's license field: the weights' license and the training data's terms */
  license?: string | undefined;
  executionProvider?: ExecutionProvider;
  threads?: number;
}

export interface ScoreTrainEvents {
  onStage?(message: string): void;
  onProgress?(p: {
    step: number;
    steps: number | null;
    loss: number;
    lossEma: number;
    imagesPerSecond: number;
    etaSeconds: number | null;
  }): void;
  onEval?(e: { step: number; images: number; times: number[]; errors: number[] }): void;
  onCheckpoint?(path: string): void;
  /** a PNG grid: held-out targets, noised at t = 0.2 / 0.5 / 0.8 and denoised by the EMA model (also written as preview.png) */
  onPreview?(png: Uint8Array): void;
  onWarning?(message: string): void;
}

export interface ScoreTrainResult {
  manifestPath: string;
  onnxPath: string;
  checkpointPath: string;
  steps: number;
  images: number;
  wallSeconds: number;
  finalLoss: number;
  heldout: number[] | null;
  /** the never-ship-noise check of the export (null without held-out images) */
  check: DenoisingLevel[] | null;
  cancelled: boolean;
}

/** Held-out images: the discriminator trainer's stable split by file name, with its own salt. */
const isHeldOut = (file: string, fraction: number) => isValidation(file, fraction, 'dg-studio/score-heldout:');

/** Read every image (skipping unreadable ones with a warning naming them); say how many were resized. */
async function readImages(
  files: string[],
  spec: ImageSpec,
  what: string,
  events: ScoreTrainEvents,
): Promise<{ file: string; data: Float32Array }[]> {
  const out: { file: string; data: Float32Array }[] = [];
  const resized: string[] = [];
  for (const file of files) {
    try {
      const data = await readImage(file, spec);
      const meta = await sharp(file).metadata();
      if (meta.width !== spec.width || meta.height !== spec.height) resized.push(`${basename(file)} (${meta.width}×${meta.height})`);
      out.push({ file, data });
    } catch (e) {
      events.onWarning?.(`skipping ${(e as Error).message}`);
    }
  }
  if (resized.length)
    events.onWarning?.(
      `${resized.length} of ${files.length} ${what} images are not ${spec.width}×${spec.height}; they were resized to cover it and centre-cropped` +
        ` (e.g. ${resized.slice(0, 3).join(', ')})`,
    );
  return out;
}

/** A digest of the training data (names and pixels), recorded in the manifest. */
function dataDigest(items: { file: string; data: Float32Array }[]): string {
  const h = createHash('sha256');
  for (const it of items) h.update(basename(it.file)).update(Buffer.from(it.data.buffer, it.data.byteOffset, it.data.byteLength));
  return h.digest('hex');
}

async function loadCheckpointFile(path: string) {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new Error(
      `cannot read checkpoint "${path}": ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  return decodeSafetensors(buf, path);
}

const sameArch = (a: UNetArch, b: UNetArch) =>
  a.channels === b.channels &&
  a.groups === b.groups &&
  a.patch === b.patch &&
  a.resolution === b.resolution &&
  a.mult.join() === b.mult.join() &&
  a.attn.join() === b.attn.join();

const describeArch = (a: UNetArch) =>
  `channels ${a.channels}, mult ${a.mult.join(',')}, attn ${a.attn.join(',') || '-'}, groups ${a.groups}, patch ${a.patch}, ${a.resolution}×${a.resolution}`;

/**
 * The U-Net to train and, on --resume, the checkpoint it continues: the checkpoint's architecture and
 * t_max win (another one asked for is refused, saying both); the architecture is checked before anything runs.
 */
async function architectureAndResume(req: TrainScoreModelRequest, ckptPath: string, events: ScoreTrainEvents) {
  let arch: UNetArch = { ...DEFAULT_UNET_ARCH, ...req.arch };
  const resumeFile = req.resume && existsSync(ckptPath) ? await loadCheckpointFile(ckptPath) : null;
  if (req.resume && !resumeFile) events.onWarning?.(`no checkpoint in ${req.outDir}: starting fresh`);
  if (resumeFile) {
    const saved = checkpointArch(resumeFile, ckptPath);
    if (req.arch && !sameArch(saved, arch))
      throw new Error(
        `${ckptPath} was made with ${describeArch(saved)}; this run asks for ${describeArch(arch)}. Drop the width options to resume, or train into a new folder.`,
      );
    arch = saved;
  }
  const problem = unetArchProblem(arch);
  if (problem) throw new Error(`cannot build this U-Net: ${problem}`);
  const tMax = req.tMax ?? (resumeFile ? Number(resumeFile.metadata['t_max'] ?? 1) : DEFAULT_SCORE_TRAINING.tMax);
  if (!(tMax > 0 && tMax <= 1)) throw new Error(`--t-max must be in (0, 1] (got ${tMax})`);
  if (resumeFile && Number(resumeFile.metadata['t_max'] ?? 1) !== tMax)
    throw new Error(`${ckptPath} was trained with t_max ${resumeFile.metadata['t_max']}; resume it with the same --t-max`);
  const saved = resumeFile ? checkpointPrecond(resumeFile, ckptPath) : null;
  if (saved && req.precond && req.precond !== saved)
    throw new Error(`${ckptPath} was trained with ${saved} preconditioning; resume it with --precond ${saved}, or train into a new folder`);
  // a new run starts from --init's recipe (its weights mean something only under it), else ε: at the budgets of a short
  // run EDM's outputs are the grainier (docs/benchmarks.md, score-train)
  const initFile = !resumeFile && req.init ? await loadCheckpointFile(req.init) : null;
  const fromInit = initFile ? checkpointPrecond(initFile, req.init!) : null;
  const precond = saved ?? req.precond ?? fromInit ?? 'eps';
  if (precond !== 'edm' && req.noise) throw new Error('EDM noise levels (--p-mean, --p-std) apply with --precond edm only');
  return { arch, resumeFile, initFile, tMax, precond };
}

/** The training images and the held-out ones (given, or 5 % of the data by file name), read and checked. */
async function trainingImages(req: TrainScoreModelRequest, spec: ImageSpec, events: ScoreTrainEvents) {
  let files: string[];
  try {
    files = await expandInputs(req.data);
  } catch (e) {
    throw new Error(`training data: ${(e as Error).message}`, { cause: e });
  }
  const heldFiles = req.heldout?.length ? await expandInputs(req.heldout) : files.filter((f) => isHeldOut(f, 0.05));
  const trainFiles = req.heldout?.length ? files : files.filter((f) => !isHeldOut(f, 0.05));
  events.onStage?.(`reading ${trainFiles.length} training and ${heldFiles.length} held-out images`);
  const train = await readImages(trainFiles, spec, 'training', events);
  if (train.length < 2)
    throw new Error(`training data: need at least two readable images (found ${train.length} in ${req.data.join(', ')})`);
  const held = (await readImages(heldFiles, spec, 'held-out', events)).slice(0, req.evalCount ?? 64);
  return { train, held };
}

/**
 * The trainer, with the recipe of the checkpoint it resumes unless the request changes it (then the run is no
 * longer an exact continuation, and says so), restored from that checkpoint or initialised from --init
 * (its weights only: step, images and optimizer start afresh).
 */
async function createTrainer(
  req: TrainScoreModelRequest,
  arch: UNetArch,
  resumeFile: StFile | null,
  initFile: StFile | null,
  tMax: number,
  precond: ScorePrecond,
  ckptPath: string,
  events: ScoreTrainEvents,
) {
  const o = DEFAULT_SCORE_TRAINING;
  const saved = (key: string): number | undefined => {
    const v = resumeFile?.metadata[key];
    return v === undefined || v === '' || !Number.isFinite(Number(v)) ? undefined : Number(v);
  };
  const changed = (
    [
      ['batch', req.batchSize],
      ['lr', req.lr],
      ['ema', req.emaDecay],
      ['seed', req.seed],
    ] as const
  ).filter(([k, v]) => v !== undefined && saved(k) !== undefined && saved(k) !== v);
  if (changed.length)
    events.onWarning?.(
      `resuming with ${changed.map(([k, v]) => `${k} ${v} (checkpoint: ${saved(k)})`).join(', ')}: not an exact continuation of the earlier run`,
    );
  const seed = req.seed ?? saved('seed') ?? 0;
  const built = buildUNet(arch, seed);
  const noise = precond === 'edm' ? { ...(lastNoiseLevels(resumeFile, ckptPath) ?? EDM_NOISE_DEFAULT), ...req.noise } : undefined;
  const trainer = await ScoreTrainer.create(built, {
    ...o,
    batchSize: req.batchSize ?? saved('batch') ?? o.batchSize,
    lr: req.lr ?? saved('lr') ?? o.lr,
    warmupSteps: req.warmupSteps ?? saved('warmup') ?? o.warmupSteps,
    emaDecay: req.emaDecay ?? saved('ema') ?? o.emaDecay,
    tMax,
    seed,
    precond,
    ...(noise ? { noise } : {}),
    session: { executionProvider: req.executionProvider, threads: req.threads, onWarning: events.onWarning },
  });
  try {
    if (resumeFile) {
      trainer.restore(resumeFile, ckptPath);
      events.onStage?.(
        `resumed at step ${trainer.step} (${trainer.images} images, ${(trainer.wallSeconds / 60).toFixed(1)} min of training)`,
      );
      const last = trainer.noiseHistory.at(-1);
      if (last && last.step === trainer.step && trainer.step > 0)
        events.onStage?.(`noise levels from step ${trainer.step}: ln σ ~ N(${last.p_mean}, ${last.p_std}²)`);
    } else if (initFile && req.init) {
      const from = checkpointArch(initFile, req.init);
      if (!sameArch(from, arch))
        throw new Error(`--init ${req.init} was made with ${describeArch(from)}; this run asks for ${describeArch(arch)}`);
      const fromPrecond = checkpointPrecond(initFile, req.init);
      if (fromPrecond !== precond)
        throw new Error(
          `--init ${req.init} was trained with ${fromPrecond} preconditioning; this run asks for ${precond}: its weights mean something else`,
        );
      trainer.restore(initFile, req.init);
      trainer.step = 0;
      trainer.images = 0;
      trainer.wallSeconds = 0;
      trainer.adam.stepCount = 0;
      for (const m of [...trainer.adam.m.values(), ...trainer.adam.v.values()]) m.fill(0);
      events.onStage?.(`initialized from ${req.init}`);
    }
  } catch (e) {
    await trainer.dispose();
    throw e;
  }
  return { trainer, built };
}

/**
 * The preview grid, written to preview.png and sent to the caller: a few held-out targets (training images,
 * labelled so, when there are none) noised at PREVIEW_TIMES and denoised, then the given source images
 * noised to t0 and translated (SDEdit, DDIM 10 steps) in the same columns.
 */
async function previewWriter(
  trainer: ScoreTrainer,
  req: TrainScoreModelRequest,
  spec: ImageSpec,
  targets: { data: Float32Array }[],
  heldOut: boolean,
  tMax: number,
  events: ScoreTrainEvents,
): Promise<() => Promise<void>> {
  const previewItems = targets.slice(0, 4).map((h) => h.data);
  const previewSources = await readPreviewSources(req.previewSources, spec, events);
  const sdeditTimes = PREVIEW_TIMES.filter((t) => t <= tMax); // SDEdit starts only where the model was trained
  return async () => {
    if (!previewItems.length) return;
    const tiles = await denoisingPreview(trainer, previewItems, PREVIEW_TIMES);
    const perRow = PREVIEW_TIMES.length * 2 + 1;
    const rows = previewItems.map((_, r) => tiles.slice(r * perRow, (r + 1) * perRow));
    if (previewSources.length) {
      const sd = await sdeditPreview(trainer, previewSources, sdeditTimes);
      const per = 1 + 2 * sdeditTimes.length;
      rows.push(...previewSources.map((_, r) => sd.slice(r * per, (r + 1) * per)));
    }
    const label = heldOut ? 'held-out' : 'training image';
    const png = new Uint8Array(await imageGrid(rows, spec, [label, ...PREVIEW_TIMES.flatMap((t) => [`noised t ${t}`, `denoised t ${t}`])]));
    await writeFileAtomic(join(req.outDir, 'preview.png'), png);
    events.onPreview?.(png);
  };
}

/** The loop's progress as the caller's events: steps, losses, images/s and an ETA from whichever budget ends first. */
function progressReporter(req: TrainScoreModelRequest, batchSize: number, events: ScoreTrainEvents) {
  return (p: { step: number; loss: number; lossEma: number; itemsPerSecond: number; elapsedMs: number }) => {
    const left = [
      req.steps !== undefined ? ((req.steps - p.step) * batchSize) / Math.max(p.itemsPerSecond, 1e-9) : Infinity,
      req.minutes !== undefined ? req.minutes * 60 - p.elapsedMs / 1000 : Infinity,
    ];
    const eta = Math.min(...left);
    events.onProgress?.({
      step: p.step,
      steps: req.steps ?? null,
      loss: p.loss,
      lossEma: p.lossEma,
      imagesPerSecond: p.itemsPerSecond,
      etaSeconds: Number.isFinite(eta) ? eta : null,
    });
  };
}

export async function trainScoreModel(
  req: TrainScoreModelRequest,
  events: ScoreTrainEvents = {},
  signal?: AbortSignal,
): Promise<ScoreTrainResult> {
  const ckptPath = join(req.outDir, CHECKPOINT_FILE);
  const { arch, resumeFile, initFile, tMax, precond } = await architectureAndResume(req, ckptPath, events);
  const spec: ImageSpec = { channels: 3, height: arch.resolution, width: arch.resolution, valueRange: [-1, 1] };
  const { train, held } = await trainingImages(req, spec, events);
  const data = train.map((t) => t.data);

  const { trainer, built } = await createTrainer(req, arch, resumeFile, initFile, tMax, precond, ckptPath, events);
  try {
    await mkdir(req.outDir, { recursive: true });
    const digest = dataDigest(train);
    const saveCheckpoint = async () => {
      const file = trainer.checkpoint({ data_sha256: digest, data: resolve(req.data[0]!) });
      await writeFileAtomic(ckptPath, new Uint8Array(encodeSafetensors(file)));
      events.onCheckpoint?.(ckptPath);
    };
    const evaluate = async () => {
      if (!held.length) return null;
      const errors = await trainer.heldoutError(
        held.map((h) => h.data),
        EVAL_TIMES,
      );
      events.onEval?.({ step: trainer.step, images: trainer.images, times: EVAL_TIMES, errors });
      return errors;
    };
    const writePreview = await previewWriter(trainer, req, spec, held.length ? held : train, held.length > 0, tMax, events);
    const params = unetParameterCount(built);
    const budget =
      [req.steps ? `to step ${req.steps}` : '', req.minutes ? `for ${req.minutes} min` : ''].filter(Boolean).join(' or ') ||
      'until cancelled';
    events.onStage?.(
      `training a ${(params / 1e6).toFixed(2)}M-parameter U-Net (${describeArch(arch)}${precond === 'edm' ? `, EDM preconditioning, ln σ ~ N(${trainer.noise.pMean}, ${trainer.noise.pStd}²)` : ''}) on ${trainer.provider}: ${data.length} images, t ≤ ${tMax}, batch ${trainer.opts.batchSize}, ${budget}`,
    );
    let heldout: number[] | null = null;
    const startStep = trainer.step;
    const t = trainer;
    const pause = req.pauseFlag;
    const { cancelled, lossEma } = await runTrainingLoop({
      step: () => t.step,
      trainStep: async () => (await t.trainStep(data)).loss,
      itemsPerStep: trainer.opts.batchSize,
      until: { steps: req.steps, minutes: req.minutes },
      pause: () => waitWhilePaused(pause, signal),
      lossEmaDecay: 0.98,
      reportEveryMs: 1000,
      onProgress: progressReporter(req, t.opts.batchSize, events),
      evaluate: {
        every: { ms: (req.evalMinutes ?? 10) * 60_000 },
        run: async () => {
          heldout = await evaluate();
          await writePreview();
        },
      },
      checkpoint: { every: { ms: (req.checkpointMinutes ?? 3) * 60_000 }, run: saveCheckpoint },
      signal,
    });
    await saveCheckpoint();
    if (trainer.step > startStep || heldout === null) heldout = await evaluate();
    await writePreview();

    const pkg = await writeScorePackage(
      trainer,
      { ...req, arch, tMax, params, dataSha256: digest, images: data.length, lossEma, evalTimes: EVAL_TIMES, heldout, cancelled },
      held.map((h) => h.data),
      events.onWarning,
    );
    return {
      ...pkg,
      checkpointPath: ckptPath,
      steps: trainer.step,
      images: trainer.images,
      wallSeconds: trainer.wallSeconds,
      finalLoss: lossEma,
      heldout,
      cancelled,
    };
  } finally {
    await trainer.dispose();
  }
}

/** The noise levels an EDM checkpoint trained at last (null for none, or a checkpoint without any). */
function lastNoiseLevels(file: StFile | null, source: string): EdmNoiseLevels | null {
  const last = file ? checkpointNoiseHistory(file, source).at(-1) : undefined;
  return last ? { pMean: last.p_mean, pStd: last.p_std } : null;
}

/** Up to two source images for the preview's SDEdit rows; unreadable ones are skipped with a warning. */
async function readPreviewSources(inputs: string[] | undefined, spec: ImageSpec, events: ScoreTrainEvents): Promise<Float32Array[]> {
  if (!inputs?.length) return [];
  const out: Float32Array[] = [];
  for (const file of (await expandInputs(inputs)).slice(0, 2)) {
    try {
      out.push(await readImage(file, spec));
    } catch (e) {
      events.onWarning?.(`preview source skipped: ${(e as Error).message}`);
    }
  }
  return out;
}
