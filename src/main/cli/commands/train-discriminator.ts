/** `dg-studio train-discriminator` and `export-discriminator`: the DG discriminator, trained in the app's engine. */
import { InvalidArgumentError, Option, type Command } from '@commander-js/extra-typings';
import { isDiffusersFolder, readDiffusersFolder } from '../../engine/models/diffusers-folder.js';
import type { FeatureTimeEncoding } from '../../engine/nn/frozen-features.js';
import { DEFAULT_DISCRIMINATOR_LR } from '../../engine/train/discriminator-trainer.js';
import { exportDiscriminator } from '../../services/discriminator-package.js';
import { trainDiscriminator } from '../../services/discriminator-training.js';
import { bundledDefaults } from '../../services/resources.js';
import { fraction, nonNegative, nonNegativeInt, pair, positive, positiveInt, providerOption, seed, threadsOption } from '../options.js';
import { abortOnSigint, progressBar, runAction } from '../run.js';

/** stepT (the DDPM step round(τ·(T−1)), e.g. step1000) or tau */
function featureTimeEncoding(v: string): FeatureTimeEncoding {
  if (v === 'tau') return { kind: 'tau' };
  const m = /^step(\d+)$/.exec(v);
  if (!m || Number(m[1]) < 2) throw new InvalidArgumentError(`--feature-time-encoding takes stepT (e.g. step1000) or tau, got "${v}"`);
  return { kind: 'ddpm-step', steps: Number(m[1]) };
}

function trainDiscriminatorCommand(program: Command) {
  return program
    .command('train-discriminator')
    .description('train a source-vs-target discriminator for DG (real = target images; fake = sources and their unguided translations)')
    .requiredOption('--source <dirs...>', 'source-domain images (files or folders)')
    .requiredOption('--target <dirs...>', 'target-domain images (files or folders)')
    .option(
      '--model <manifest>',
      'target score model, or a Stable Diffusion-family folder: then it learns on its latents (default: the bundled default)',
    )
    .option(
      '--prompt <text>',
      "latent models: the prompt the fakes are translated with (the one you will translate with; default: the folder's dg-studio.json, else none)",
    )
    .option('--negative-prompt <text>', "latent models: the negative prompt of the fakes (default: the folder's, else none)")
    .option('--cfg <g>', "latent models: the CFG scale of the fakes (default: the folder's, else 1)", positive('--cfg'))
    .option(
      '--image-size <px>',
      "latent models: the square side images are read at, latents are this / the VAE factor (default: the folder's, else 512)",
      positiveInt('--image-size'),
    )
    .option('--t0 <lo,hi>', 't0 range you will translate with', pair('--t0'), [0.3, 0.7] as [number, number])
    .option('--steps <n>', 'training steps (at least 1)', positiveInt('--steps'), 2000)
    .option('--epochs <n>', 'passes over the training images (overrides --steps)', positive('--epochs'))
    .option('--batch-size <n>', 'images per step (half real, half fake)', positiveInt('--batch-size'), 32)
    .option('--lr <lr>', 'Adam learning rate', positive('--lr'), DEFAULT_DISCRIMINATOR_LR)
    .addOption(
      new Option('--lr-schedule <kind>', 'learning rate over the run: a cosine decay to 0 at the last step, or constant')
        .choices(['cosine', 'constant'] as const)
        .default('cosine' as const),
    )
    .addOption(new Option('--loss <loss>', 'density-ratio loss').choices(['bce', 'lsif', 'ukl'] as const).default('bce' as const))
    .option(
      '--label-smoothing <e>',
      'BCE targets 1 − e (real) and e (fake): logits settle instead of growing, a smoother guidance gradient (dg-math §10; 0: hard labels; docs/benchmarks.md, dg-pilot)',
      labelSmoothingArg,
      0.1,
    )
    .option(
      '--r1 <gamma>',
      "R1 penalty weight γ on real images' ‖∇x logit‖²: a smoother guidance gradient, ~3× the step cost (dg-math §10; 0: none)",
      nonNegative('--r1'),
      1,
    )
    .addOption(
      new Option('--time-sampling <kind>', 'τ sampling').choices(['importance', 'uniform'] as const).default('importance' as const),
    )
    .option('--translations <k>', 'unguided translations per source image', nonNegativeInt('--translations'), 1)
    .option('--translation-steps <n>', 'sampler steps for those translations', positiveInt('--translation-steps'), 10)
    .option('--fakes <dirs...>', 'more fake images: unguided translations made elsewhere (e.g. on a GPU by tools/device-train.sh)')
    .option('--channels <list>', 'encoder channels per level', (v: string) => v.split(',').map(positiveInt('--channels')))
    .option('--attention-at <list>', 'resolutions of the (pooled) view that get self-attention, or "none" (default: 8)', (v: string) =>
      v === 'none' ? [] : v.split(',').map(positiveInt('--attention-at')),
    )
    .option(
      '--downsample <f>',
      'average-pool images by f inside the discriminator (default 2: a 32×32 view of 64×64 images)',
      positiveInt('--downsample'),
    )
    .option('--classes', 'class-conditional: source and target folders hold one subfolder per class', false)
    .option('--features <onnx>', "the paper's design: a frozen feature extractor (ONNX) with a trained head; give --feature-tensor")
    .option('--feature-tensor <name>', 'the tensor to cut the feature extractor at')
    .option('--feature-time <input>', "a time-conditioned extractor (a noisy classifier, a score model's U-Net): its input that takes time")
    .option(
      '--feature-time-encoding <enc>',
      'how τ is fed to it: stepT (DDPM step round(τ·(T−1)), e.g. step1000) or tau',
      featureTimeEncoding,
      { kind: 'ddpm-step', steps: 1000 } as FeatureTimeEncoding,
    )
    .option('--val-fraction <f>', 'held-out share of images (split by file name)', fraction('--val-fraction'), 0.1)
    .option('--seed <n>', 'seed', seed('--seed'), 0)
    .option('--eval-every <n>', 'validate every n steps', positiveInt('--eval-every'), 250)
    .option('--resume', 'continue from the checkpoint in --out', false)
    .option('--init <dir>', 'start from the weights of an earlier run of the same architecture (its --out folder)')
    .option(
      '--refine <discriminator>',
      'train the next round of this discriminator (dg-math §10): the fakes are translations guided by it; the package is it plus the new round',
    )
    .option(
      '--refine-weight <w>',
      'the DG weight those translations are guided with (default: its recommended weight)',
      nonNegative('--refine-weight'),
    )
    .requiredOption('--out <dir>', 'folder for the discriminator package')
    .addOption(providerOption())
    .addOption(threadsOption());
}
type TrainDiscriminatorOptions = ReturnType<ReturnType<typeof trainDiscriminatorCommand>['opts']>;

export function addTrainDiscriminator(program: Command): void {
  trainDiscriminatorCommand(program).action((o, cmd) =>
    runAction(() =>
      runTrain({
        ...o,
        labelSmoothing: smoothingFor(o.loss, o.labelSmoothing, cmd.getOptionValueSource('labelSmoothing') === 'cli'),
        // R1 through a frozen feature extractor differentiates the whole extractor twice: only when asked for
        r1: o.features && cmd.getOptionValueSource('r1') !== 'cli' ? 0 : o.r1,
      }),
    ),
  );
  program
    .command('export-discriminator')
    .description(
      "make a usable discriminator package (ONNX + manifest) from a training run's checkpoint, e.g. tools/pretrained/twemoji-vs-noto-disc",
    )
    .argument('<run>', 'a train-discriminator --out folder, or a folder with checkpoint/ and training.json')
    .requiredOption('--out <dir>', 'folder for the package (give it to --discriminator)')
    .option('--name <name>', "the discriminator's name (default: the run folder and step)")
    .action((run, o) =>
      runAction(async () => {
        const r = await exportDiscriminator(run, o.out, o.name);
        console.error(`wrote ${r.manifestPath} (weights of step ${r.step}; checked by loading it and a dry run)`);
      }),
    );
}

/** Label smoothing applies to the BCE loss: the default is dropped for LSIF/UKL, a typed value is kept (and refused there in words). */
function smoothingFor(loss: string, value: number, typed: boolean): number {
  return loss === 'bce' || typed ? value : 0;
}

/** --label-smoothing: a share in [0, 0.5). */
function labelSmoothingArg(v: string): number {
  const e = Number(v);
  if (!(e >= 0 && e < 0.5)) throw new InvalidArgumentError(`--label-smoothing must be in [0, 0.5) (e.g. 0.1), got "${v}"`);
  return e;
}

/** A latent model's size and text: the flags, else the folder's own dg-studio.json, else SD 1.x's 512 and no text. */
function latentSettings(o: TrainDiscriminatorOptions, model: string) {
  const d = isDiffusersFolder(model) ? readDiffusersFolder(model).defaults : {};
  return {
    imageSize: o.imageSize ?? d.imageSize ?? 512,
    prompt: o.prompt ?? d.prompt ?? '',
    negativePrompt: o.negativePrompt ?? d.negativePrompt ?? '',
    cfgScale: o.cfg ?? d.cfgScale ?? 1,
  };
}

async function runTrain(o: TrainDiscriminatorOptions): Promise<void> {
  const modelManifest = o.model ?? bundledDefaults().scoreModel;
  let lastLine = Date.now();
  const bar = progressBar('{bar} {value}/{total} | loss {loss} | {rate} img/s');
  const signal = abortOnSigint('stopping: saving a checkpoint and the package so far…');
  let started = false;
  try {
    const result = await trainDiscriminator(
      {
        modelManifest,
        sources: o.source,
        targets: o.target,
        outDir: o.out,
        t0Range: o.t0,
        steps: o.steps,
        epochs: o.epochs,
        batchSize: o.batchSize,
        lr: o.lr,
        lrSchedule: o.lrSchedule,
        loss: o.loss,
        labelSmoothing: o.labelSmoothing,
        r1Gamma: o.r1,
        timeSampling: o.timeSampling,
        translationsPerSource: o.translations,
        translationSteps: o.translationSteps,
        extraFakes: o.fakes,
        channels: o.channels,
        attentionAt: o.attentionAt,
        downsample: o.downsample,
        classes: o.classes,
        frozenFeatures: o.features
          ? {
              onnx: o.features,
              tensor: o.featureTensor ?? '',
              ...(o.featureTime ? { time: { name: o.featureTime, encoding: o.featureTimeEncoding } } : {}),
            }
          : undefined,
        valFraction: o.valFraction,
        seed: o.seed,
        evalEvery: o.evalEvery,
        resume: o.resume,
        init: o.init,
        refine: o.refine ? { discriminator: o.refine, weight: o.refineWeight } : undefined,
        executionProvider: o.provider,
        threads: o.threads,
        latent: latentSettings(o, modelManifest),
      },
      {
        onStage: (m) => console.error(m),
        onWarning: (m) => console.error(`warning: ${m}`),
        onProgress: (p) => {
          // no terminal (a log file, CI): a plain line every 30 s instead of the bar
          if (!bar && Date.now() - lastLine > 30_000) {
            lastLine = Date.now();
            console.error(`step ${p.step}/${p.steps}: loss ${p.lossEma.toFixed(4)}, ${p.itemsPerSecond.toFixed(0)} images/s`);
          }
          if (bar && !started) {
            bar.start(p.steps, p.step, { loss: '…', rate: '…' });
            started = true;
          }
          bar?.update(p.step, { loss: p.lossEma.toFixed(4), rate: p.itemsPerSecond.toFixed(0) });
        },
        onEval: (e) => {
          if (bar) {
            bar.stop();
            started = false;
          }
          console.error(
            `step ${e.step}: validation accuracy ${e.accuracy.toFixed(3)}, loss ${e.loss.toFixed(4)} | by τ: ${e.bands.map((b) => `${b.lo.toFixed(2)}–${b.hi.toFixed(2)} ${b.accuracy.toFixed(2)}`).join(', ')}`,
          );
        },
      },
      signal,
    );
    console.error(
      `${result.cancelled ? 'stopped early; ' : ''}wrote ${result.manifestPath} (${result.steps} steps, validation accuracy ${result.validation.accuracy.toFixed(3)})`,
    );
    console.error(`use it: dg-studio translate <images> --discriminator ${result.manifestPath}`);
  } finally {
    bar?.stop();
  }
}
