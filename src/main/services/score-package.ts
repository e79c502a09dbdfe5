/**
 * The score trainer's package: the EMA weights as model.onnx, a manifest `translate` loads unchanged
 * (with the training record), the never-ship-noise check of the export on held-out images, and a
 * README that states it. Written at the end of every run of `trainScoreModel` (score-training.ts).
 */
import { basename, join, resolve } from 'node:path';
import type { ScoreModelManifestInput } from '../../shared/manifest.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { writeFileAtomic } from '../engine/io/image-io.js';
import { NEVER_SHIP_NOISE, scoreModelCheck, type DenoisingLevel } from '../engine/models/model-check.js';
import { loadScoreModel } from '../engine/models/score-model.js';
import type { UNetArch } from '../engine/nn/unet.js';
import { serializeModel } from '../engine/onnx/ir.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import type { ScoreTrainer } from '../engine/train/score-trainer.js';

const { t0s: CHECK_T0S, maxRatio: MAX_CHECK_RATIO } = NEVER_SHIP_NOISE;

/** What the run knows that the trainer does not: the request's names, the data, the last numbers. */
export interface ScoreRunRecord {
  outDir: string;
  name?: string | undefined;
  license?: string | undefined;
  arch: UNetArch;
  tMax: number;
  params: number;
  dataSha256: string;
  images: number;
  lossEma: number;
  evalTimes: number[];
  heldout: number[] | null;
  cancelled: boolean;
  executionProvider?: ExecutionProvider | undefined;
  threads?: number | undefined;
}

type TrainedManifest = ScoreModelManifestInput & { training: Record<string, unknown> };

/** The exported model, loaded as translate loads it, through the shipping check. */
async function neverShipNoise(manifestPath: string, images: Float32Array[], run: ScoreRunRecord): Promise<DenoisingLevel[]> {
  const model = await loadScoreModel(manifestPath, { executionProvider: run.executionProvider, threads: run.threads });
  try {
    return await scoreModelCheck(model, images, CHECK_T0S);
  } finally {
    await model.dispose();
  }
}

function modelReadme(
  manifest: { name: string; description?: string | undefined; training: Record<string, unknown> },
  check: DenoisingLevel[] | null,
): string {
  const t = manifest.training;
  const lines = [
    `# ${manifest.name}`,
    '',
    manifest.description ?? '',
    '',
    `Exported by \`dg-studio train-score-model\` after ${String(t['steps'])} steps, ${String(t['imagesSeen'])} images seen, ${Math.round(Number(t['wallSeconds']) / 60)} min of training, t ≤ ${String(t['tMax'])}` +
      (typeof t['finalLoss'] === 'number' ? `; final loss (EMA of the step losses) ${t['finalLoss'].toFixed(4)}.` : '.'),
    '',
  ];
  if (check) {
    lines.push(
      `**Never ship noise** (\`engine/model-check.ts\`): denoising MSE on held-out images against the per-pixel linear MMSE denoiser fitted to them (below ${MAX_CHECK_RATIO} passes).`,
      '',
      '| t0 | σ_ve | model MSE | baseline MSE | ratio |',
      '|---|---|---|---|---|',
      ...check.map(
        (l, i) =>
          `| ${CHECK_T0S[i]} | ${l.sigma.toFixed(3)} | ${l.modelMse.toFixed(4)} | ${l.baselineMse.toFixed(4)} | ${l.ratio.toFixed(3)} |`,
      ),
      '',
    );
  } else lines.push('No held-out images: the never-ship-noise check did not run.', '');
  return lines.join('\n');
}

/**
 * The manifest of a U-Net trained in the app (DDPM linear schedule, integer steps), with its training record: an ε
 * network from outside, whether it predicts ε itself or is EDM's F wrapped so (dg-math §9).
 */
function trainedManifest(trainer: ScoreTrainer, run: ScoreRunRecord): TrainedManifest {
  const { arch, tMax, params, heldout } = run;
  return {
    format: 'dg-studio/score-model@1',
    name: run.name ?? `${basename(resolve(run.outDir))} (trained in DG Studio)`,
    description: `${trainer.precond === 'edm' ? 'U-Net with EDM preconditioning, exported as an ε network' : 'ε-prediction U-Net'} (${(params / 1e6).toFixed(2)}M parameters) trained in DG Studio ${ENGINE_VERSION}: ${trainer.step} steps of ${trainer.opts.batchSize}, EMA ${trainer.opts.emaDecay}`,
    onnx: 'model.onnx',
    io: { x: 'x', t: 't', output: 'out' },
    prediction: 'eps',
    schedule: { kind: 'ddpm-linear', steps: 1000, betaStart: 1e-4, betaEnd: 0.02 },
    timeInput: { kind: 'step', scale: 1 },
    timeDType: 'int64',
    ...(run.license ? { license: run.license } : {}),
    dataShape: [3, arch.resolution, arch.resolution],
    valueRange: [-1, 1],
    validTimeRange: [0, tMax],
    training: {
      trainer: 'dg-studio train-score-model',
      architecture: arch,
      precond: trainer.precond,
      ...(trainer.precond === 'edm' ? { noiseLevels: trainer.noiseHistory } : {}),
      parameters: params,
      dataSha256: run.dataSha256,
      images: run.images,
      steps: trainer.step,
      imagesSeen: trainer.images,
      wallSeconds: Math.round(trainer.wallSeconds),
      batchSize: trainer.opts.batchSize,
      lr: trainer.opts.lr,
      emaDecay: trainer.opts.emaDecay,
      tMax,
      finalLoss: Number.isFinite(run.lossEma) ? run.lossEma : null,
      heldoutEpsMse: heldout ? Object.fromEntries(run.evalTimes.map((t, i) => [String(t), heldout[i]])) : null,
      cancelled: run.cancelled,
      createdAt: new Date().toISOString(),
    },
  };
}

/**
 * model.onnx, manifest.json and README.md in run.outDir; the export is loaded back and checked against
 * the per-pixel linear denoiser on the held-out images (≥ 2), its verdict recorded in the manifest
 * (the studio's card warns from it) and said as a warning when it fails.
 */
export async function writeScorePackage(
  trainer: ScoreTrainer,
  run: ScoreRunRecord,
  held: Float32Array[],
  onWarning?: (message: string) => void,
): Promise<{ manifestPath: string; onnxPath: string; check: DenoisingLevel[] | null }> {
  const onnxPath = join(run.outDir, 'model.onnx');
  await writeFileAtomic(onnxPath, serializeModel(trainer.exportModel({ 'dg-studio': 'score-model' })));
  const manifest = trainedManifest(trainer, run);
  const manifestPath = join(run.outDir, 'manifest.json');
  await writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2));
  // never ship noise: the exported model against the per-pixel linear denoiser on held-out images
  const check = held.length >= 2 ? await neverShipNoise(manifestPath, held, run) : null;
  if (check) {
    manifest.training['denoisingCheck'] = {
      passed: check.every((l) => l.ratio < MAX_CHECK_RATIO),
      ratios: Object.fromEntries(check.map((l, i) => [String(CHECK_T0S[i]), l.ratio])),
    };
    await writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2));
  }
  await writeFileAtomic(join(run.outDir, 'README.md'), modelReadme(manifest, check));
  if (check && check.some((l) => !(l.ratio < MAX_CHECK_RATIO)))
    onWarning?.(
      `the model does not yet denoise held-out images clearly better than the per-pixel linear baseline (ratios ${check
        .map((l) => l.ratio.toFixed(3))
        .join(', ')} at t0 ${CHECK_T0S.join(', ')}; below ${MAX_CHECK_RATIO} is needed): train longer before using it`,
    );
  return { manifestPath, onnxPath, check };
}
