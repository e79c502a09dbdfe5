/**
 * A discriminator package: forward.onnx, its guidance graph (∇x log r, onnx-critic.ts) and a manifest with
 * the training record — written when a training ends (cancelled too), or exported from a run folder that
 * holds only a checkpoint.
 */
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { DiscriminatorManifest, OnnxDiscriminatorManifest } from '../../shared/manifest.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { writeFileAtomic } from '../engine/io/image-io.js';
import { loadDiscriminator } from '../engine/models/discriminator.js';
import { buildGuidanceModel } from '../engine/models/onnx-critic.js';
import { fileInManifestFolder } from '../engine/models/manifest-files.js';
import { buildDiscriminatorNet, type ConvEncoderArch } from '../engine/nn/discriminator-net.js';
import type { FrozenFeaturesArch } from '../engine/nn/frozen-features.js';
import { serializeModel, type OnnxModel } from '../engine/onnx/ir.js';
import { DEFAULT_DISCRIMINATOR_LR, type DiscriminatorTrainer } from '../engine/train/discriminator-trainer.js';
import type { TrainDiscriminatorRequest } from './discriminator-training.js';
import type { TrainingData } from './discriminator-data.js';
import { loadDiscriminatorCheckpoint } from './discriminator-checkpoint.js';

/** The discriminator package of a finished (or cancelled) training: its ONNX graphs and a manifest with the record. */
export async function writePackage(
  req: TrainDiscriminatorRequest,
  trainer: DiscriminatorTrainer,
  data: TrainingData,
  r: { arch: unknown; paramCount: number; batchSize: number; validation: unknown; cancelled: boolean; initStep: number },
): Promise<string> {
  let initFrom: { folder: string; step: number } | undefined;
  if (req.init && !req.resume) initFrom = { folder: relative(resolve(req.outDir), resolve(req.init)) || '.', step: r.initStep };
  const record = trainingRecord(req, trainer, data, r, initFrom);
  const forward = trainer.exportForward({ 'dg-studio': 'discriminator' });
  if (data.refines) return writeRoundPackage(req.outDir, data.refines, forward, data, record);
  return writeDiscriminatorPackage(req.outDir, forward, {
    name: `${basename(req.outDir)} (trained discriminator)`,
    description: `source-vs-target discriminator for ${data.latent ? 'the latents of ' : ''}"${data.model.name}", trained in DG Studio ${ENGINE_VERSION}`,
    dataShape: data.dataShape,
    valueRange: data.valueRange,
    ...(data.classNames ? { classes: data.classNames } : {}),
    training: record,
  });
}

type RunSummary = Parameters<typeof writePackage>[3];

/** What a package records of the run that made it. */
function trainingRecord(
  req: TrainDiscriminatorRequest,
  trainer: DiscriminatorTrainer,
  data: TrainingData,
  r: RunSummary,
  initFrom: { folder: string; step: number } | undefined,
): Record<string, unknown> {
  return {
    architecture: r.arch,
    parameters: r.paramCount,
    steps: trainer.step,
    ...(initFrom ? { initFrom } : {}),
    batchSize: r.batchSize,
    lr: req.lr ?? DEFAULT_DISCRIMINATOR_LR,
    lrSchedule: req.lrSchedule ?? 'cosine',
    loss: req.loss ?? 'bce',
    ...(req.labelSmoothing ? { labelSmoothing: req.labelSmoothing } : {}),
    ...(req.r1Gamma ? { r1Gamma: req.r1Gamma } : {}),
    tauRange: [1e-5, data.tauMax],
    timeSampling: req.timeSampling ?? 'importance',
    t0Range: req.t0Range,
    data: {
      realTrain: data.realTrain.length,
      fakeTrain: data.fakeTrain.length,
      realVal: data.realVal.length,
      fakeVal: data.fakeVal.length,
      translationsPerSource: data.translationsPerSource,
      extraFakes: data.extraCount,
      ...(data.guidedBy ? { guidedBy: data.guidedBy } : {}),
    },
    scoreModel: data.model,
    ...(data.latent ? { latentModel: data.latent } : {}),
    validation: r.validation,
    cancelled: r.cancelled,
    createdAt: new Date().toISOString(),
  };
}

/** The ONNX files a discriminator package names: round 1's forward graph, then each later round's. */
export function packageFiles(manifest: OnnxDiscriminatorManifest): string[] {
  return [manifest.onnx, ...(manifest.refinements ?? []).map((r) => r.onnx)];
}

/**
 * The next round of a package: its number (round 1 is the base), the file it is written to (`round<k>.onnx`) and the
 * package's files; refused when the package already names that file (checked before the run, and again when writing).
 */
export function nextRound(
  manifestPath: string,
  manifest: OnnxDiscriminatorManifest,
): { files: string[]; roundNumber: number; onnx: string } {
  const files = packageFiles(manifest);
  const roundNumber = (manifest.refinements?.length ?? 0) + 2;
  const onnx = `round${roundNumber}.onnx`;
  if (files.includes(onnx))
    throw new Error(`"${manifestPath}" already names a file "${onnx}", the next round's: rename that file in its package`);
  return { files, roundNumber, onnx };
}

/**
 * An iterated round's package (dg-math §10): the refined package's forward graphs copied beside this round's
 * (`round<k>.onnx`), its manifest with this round appended to `refinements` (weight 1) — loaded as one critic, its
 * guidance graph built from all rounds (a prebuilt `guidanceOnnx` of round 1 alone would go unused: not copied).
 */
async function writeRoundPackage(
  outDir: string,
  refines: NonNullable<TrainingData['refines']>,
  forward: OnnxModel,
  data: TrainingData,
  record: Record<string, unknown>,
): Promise<string> {
  const { manifestPath: baseManifest, manifest: base } = refines;
  const baseDir = dirname(baseManifest);
  await mkdir(outDir, { recursive: true });
  const { files, roundNumber, onnx } = nextRound(baseManifest, base);
  for (const [i, f] of files.entries()) {
    const to = fileInManifestFolder(outDir, f, `file ${i}`);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(fileInManifestFolder(baseDir, f, `file ${i}`), to);
  }
  await writeFileAtomic(join(outDir, onnx), serializeModel(forward));
  const { guidanceOnnx: _unused, ...rest } = base;
  const manifest: DiscriminatorManifest = {
    ...rest,
    name: `${base.name.replace(/ \+ round \d+$/, '')} + round ${roundNumber}`,
    description:
      `${base.description} Round ${roundNumber} trained against its DG-guided translations (w ${data.guidedBy?.weight}) in DG Studio ${ENGINE_VERSION}.`.trim(),
    refinements: [...(base.refinements ?? []), { onnx, weight: 1, training: record }],
  };
  const manifestPath = join(outDir, 'manifest.json');
  await writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2));
  return manifestPath;
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
