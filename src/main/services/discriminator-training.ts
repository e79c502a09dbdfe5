/**
 * Train a source-vs-target discriminator from two folders and a target score model, and
 * write a discriminator package (forward ONNX, guidance ONNX, manifest) that `translate`
 * loads (dg-math §6: real = target; fake = source ∪ unguided SDEdit translations).
 */
import { readFile } from 'node:fs/promises';
import { buildDiscriminatorNet, DEFAULT_ARCH, type BuiltNet, type ConvEncoderArch } from '../engine/nn/discriminator-net.js';
import { buildFrozenFeatureNet, FROZEN_FEATURES_HEAD, type FrozenFeaturesArch } from '../engine/nn/frozen-features.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { DEFAULT_DISCRIMINATOR_LR, DiscriminatorTrainer, type BandStats } from '../engine/train/discriminator-trainer.js';
import { runTrainingLoop } from '../engine/train/loop.js';
import { waitWhilePaused, type PauseFlag } from './jobs.js';
import type { RatioLoss } from '../engine/train/training-graph.js';
import { loadDiscriminatorCheckpoint, saveDiscriminatorCheckpoint } from './discriminator-checkpoint.js';
import { latentTrainingData, pixelTrainingData } from './discriminator-data.js';
import { writePackage } from './discriminator-package.js';
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
  /** the learning rate over the run: constant, or a cosine decay to 0 at the run's last step (default) */
  lrSchedule?: 'constant' | 'cosine';
  loss?: RatioLoss;
  /** dg-math §10: real targets 1 − ε, fake ε (BCE only) */
  labelSmoothing?: number;
  /** dg-math §10: R1 weight γ on real items' ‖∇x logit‖² */
  r1Gamma?: number;
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
  /** resolutions (of the pooled view) that get a self-attention block; [] for none (default: 8) */
  attentionAt?: number[];
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
  /**
   * an iterated round (dg-math §10): the fakes are the sources' translations guided by this discriminator at this
   * weight (default its recommended one); the package written is it plus this round
   */
  refine?: { discriminator: string; weight?: number | undefined } | undefined;
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
    attentionAt: (req.attentionAt ?? DEFAULT_ARCH.attentionAt).filter((r) => r < spec.height),
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
      labelSmoothing: req.labelSmoothing ?? 0,
      r1Gamma: req.r1Gamma ?? 0,
      batchSize,
      lr: req.lr ?? DEFAULT_DISCRIMINATOR_LR,
      cosineSteps: (req.lrSchedule ?? 'cosine') === 'cosine' ? steps : 0,
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
