/**
 * `dg-studio train-score-model`: train a target score model (a U-Net predicting ε, or EDM's preconditioned F) from a
 * folder of images in the app's own trainer (ONNX Runtime; no Python), with checkpoints, resume and export.
 */
import { Option, type Command } from '@commander-js/extra-typings';
import { DEFAULT_UNET_ARCH } from '../../engine/nn/unet.js';
import { DEFAULT_SCORE_TRAINING } from '../../engine/train/score-trainer.js';
import { EDM_NOISE_DEFAULT } from '../../engine/train/edm-precond.js';
import { trainScoreModel } from '../../services/score-training.js';
import { fraction, int, nonNegativeInt, num, positive, positiveInt, providerOption, seed, threadsOption } from '../options.js';
import { abortOnSigint, runAction } from '../run.js';

const ints = (name: string) => (v: string) => (v === '' ? [] : v.split(',').map(int(name)));

function trainScoreModelCommand(program: Command) {
  const d = DEFAULT_UNET_ARCH;
  const t = DEFAULT_SCORE_TRAINING;
  return program
    .command('train-score-model')
    .description(
      'train a target score model (a U-Net for the DDPM linear schedule, ε-prediction or EDM-preconditioned) from images, in ONNX Runtime: no Python',
    )
    .requiredOption('--data <dirs...>', 'target-domain images (files or folders)')
    .requiredOption('--out <dir>', 'folder for the model (model.onnx, manifest.json) and its checkpoint')
    .option('--heldout <dirs...>', 'held-out target images for the denoising error (default: 5 % of --data, by file name)')
    .option('--preview-source <files...>', 'source-domain images: the preview adds their SDEdit translations by the model in training')
    .option('--size <px>', `image side (default ${d.resolution}; other sizes are resized and centre-cropped)`, positiveInt('--size'))
    .option('--channels <n>', `base width (default ${d.channels})`, positiveInt('--channels'))
    .option('--mult <list>', `width multiplier per level (default ${d.mult.join(',')})`, ints('--mult'))
    .option('--attn <list>', `resolutions with self-attention, after --patch (default ${d.attn.join(',')})`, ints('--attn'))
    .option('--groups <n>', `GroupNorm groups (default ${d.groups})`, positiveInt('--groups'))
    .option('--patch <p>', 'space-to-depth factor at the input: 2 cuts the full-resolution cost ~4× (default 1)', positiveInt('--patch'))
    .option('--batch <n>', `images per step (default ${t.batchSize}; on --resume the checkpoint's)`, positiveInt('--batch'))
    .option('--lr <lr>', `AdamW learning rate after a linear warm-up (default ${t.lr}; on --resume the checkpoint's)`, positive('--lr'))
    .option('--warmup <steps>', `warm-up steps (default ${t.warmupSteps})`, nonNegativeInt('--warmup'))
    .option('--ema <decay>', `EMA decay of the exported weights (default ${t.emaDecay}; on --resume the checkpoint's)`, fraction('--ema'))
    .option('--minutes <m>', 'stop after this many minutes of this run', positive('--minutes'))
    .option('--steps <n>', 'stop at this many steps in all', positiveInt('--steps'))
    .addOption(
      new Option(
        '--precond <kind>',
        'what the U-Net learns: eps (ε-prediction, the DDPM simple loss) or edm (EDM preconditioning and loss, dg-math §9: ' +
          'far lower error per image seen at large t0, more noise left at small t until trained long — docs/benchmarks.md, score-train). ' +
          "Both export the same ε network (default eps; on --resume or with --init the checkpoint's)",
      ).choices(['eps', 'edm'] as const),
    )
    .option(
      '--p-mean <m>',
      `edm: mean of ln σ of the training noise (default ${EDM_NOISE_DEFAULT.pMean}; on --resume the checkpoint's)`,
      num('--p-mean'),
    )
    .option(
      '--p-std <s>',
      `edm: standard deviation of ln σ (default ${EDM_NOISE_DEFAULT.pStd}; on --resume the checkpoint's)`,
      positive('--p-std'),
    )
    .option('--t-max <t>', 'train only on t ≤ t_max: SDEdit never starts above the largest t0 you use (default 1)', fraction('--t-max'))
    .option('--resume', 'continue from the checkpoint in --out (of this trainer or tools/train-score-model.py)', false)
    .option('--init <checkpoint>', 'start from the weights of a checkpoint.safetensors of the same architecture')
    .option('--checkpoint-minutes <m>', 'write a checkpoint every m minutes (and on Ctrl-C)', positive('--checkpoint-minutes'), 3)
    .option('--eval-minutes <m>', 'held-out denoising error every m minutes', positive('--eval-minutes'), 10)
    .option('--seed <n>', "seed of the initial weights and of every batch (default 0; on --resume the checkpoint's)", seed('--seed'))
    .option('--name <name>', 'the model name in its manifest')
    .option('--license <text>', "the weights' license and the data's terms, for the manifest (shown on the model's card)")
    .addOption(providerOption())
    .addOption(threadsOption());
}
type TrainScoreModelOptions = ReturnType<ReturnType<typeof trainScoreModelCommand>['opts']>;

export function addTrainScoreModel(program: Command): void {
  trainScoreModelCommand(program).action((o) => runAction(() => run(o)));
}

async function run(o: TrainScoreModelOptions): Promise<void> {
  if (o.steps === undefined && o.minutes === undefined)
    throw new Error('give --steps or --minutes (training stops there; Ctrl-C also stops it with a checkpoint)');
  const signal = abortOnSigint('stopping: writing a checkpoint and the model so far…');
  const arch = Object.fromEntries(
    Object.entries({ resolution: o.size, channels: o.channels, mult: o.mult, attn: o.attn, groups: o.groups, patch: o.patch }).filter(
      ([, v]) => v !== undefined,
    ),
  );
  let last = 0;
  const r = await trainScoreModel(
    {
      data: o.data,
      outDir: o.out,
      heldout: o.heldout,
      previewSources: o.previewSource,
      ...(Object.keys(arch).length ? { arch } : {}),
      batchSize: o.batch,
      lr: o.lr,
      warmupSteps: o.warmup,
      emaDecay: o.ema,
      tMax: o.tMax,
      precond: o.precond,
      ...(o.pMean !== undefined || o.pStd !== undefined
        ? { noise: { ...(o.pMean !== undefined ? { pMean: o.pMean } : {}), ...(o.pStd !== undefined ? { pStd: o.pStd } : {}) } }
        : {}),
      steps: o.steps,
      minutes: o.minutes,
      resume: o.resume,
      init: o.init,
      checkpointMinutes: o.checkpointMinutes,
      evalMinutes: o.evalMinutes,
      seed: o.seed,
      name: o.name,
      license: o.license,
      executionProvider: o.provider,
      threads: o.threads,
    },
    {
      onStage: (m) => console.error(m),
      onWarning: (m) => console.error(`warning: ${m}`),
      onProgress: (p) => {
        if (Date.now() - last < (process.stderr.isTTY ? 2000 : 30_000)) return;
        last = Date.now();
        const eta = p.etaSeconds === null ? '' : `, ${Math.ceil(p.etaSeconds / 60)} min left`;
        console.error(
          `step ${p.step}${p.steps ? `/${p.steps}` : ''}: loss ${p.lossEma.toFixed(4)}, ${p.imagesPerSecond.toFixed(1)} images/s${eta}`,
        );
      },
      onEval: (e) =>
        console.error(`held-out ε-MSE (EMA) at step ${e.step}: ${e.times.map((t, i) => `t ${t}: ${e.errors[i]!.toFixed(4)}`).join(', ')}`),
    },
    signal,
  );
  console.error(
    `${r.cancelled ? 'stopped' : 'done'} at step ${r.steps} (${r.images} images, ${(r.wallSeconds / 60).toFixed(1)} min of training); ` +
      `wrote ${r.manifestPath}, ${r.onnxPath} and ${r.checkpointPath}`,
  );
}
