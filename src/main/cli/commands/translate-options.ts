/**
 * `dg-studio translate`'s options, grouped (sampler, guidance, image, latent, output, queue) in builders generic over
 * the command, so commander infers every option's type: a flag and the field it fills cannot drift.
 */
import { Option, type Command, type OptionValues } from '@commander-js/extra-typings';
import {
  fraction,
  nonNegative,
  nonNegativeInt,
  pair,
  positive,
  positiveInt,
  providerOption,
  samplerOption,
  seedOption,
  stepsOption,
  threadsOption,
} from '../options.js';

/** The DG weights and window, then the classifier's (paper Eq. 6), with boosting. */
function guidanceOptions<A extends unknown[], O extends OptionValues>(c: Command<A, O>) {
  return c
    .option(
      '--dg-weight <w>',
      "DG weight w (default: the discriminator's recommended weight, else 1; 0 without a discriminator = plain SDEdit)",
      nonNegative('--dg-weight'),
    )
    .option(
      '--dg-weight2 <w>',
      "DG weight on Heun's second stage (default: the same as --dg-weight; the paper uses 0 with w = 2)",
      nonNegative('--dg-weight2'),
    )
    .option('--dg-window <lo,hi>', 'apply DG only for LVP τ in [lo, hi]', pair('--dg-window'), [0.01, 1] as [number, number])
    .option(
      '--boost-period <n>',
      'adaptive boosting: every n steps double w for samples the discriminator calls fake',
      positiveInt('--boost-period'),
    )
    .option('--boost-churn <s>', 'adaptive boosting: extra S_churn for those samples', nonNegative('--boost-churn'), 0)
    .option('--class-label <k>', 'class for class-conditional models and for classifier guidance', nonNegativeInt('--class-label'))
    .option('--classifier <manifest>', 'classifier guidance (paper Eq. 6): a classifier manifest or its folder; give --class-label')
    .option('--cg-weight <w>', 'classifier-guidance weight (default: 1 when --classifier is given, else 0)', nonNegative('--cg-weight'));
}

/** The SDEdit start and the sampler: t0, steps, sampler, seed, batch, η, churn, spacing, the ladder's floor. */
function samplerOptions<A extends unknown[], O extends OptionValues>(c: Command<A, O>) {
  return c
    .option(
      '--t0 <t>',
      "SDEdit start time in (0, 1]: larger is more target-like, less faithful (default: the model's recommended t0, else 0.5)",
      fraction('--t0'),
    )
    .addOption(
      stepsOption("steps over [0, t0]; Heun evaluates the network twice a step but the last (the run's first line states the total)"),
    )
    .addOption(samplerOption())
    .addOption(seedOption())
    .option('--batch-size <n>', 'images per model call', positiveInt('--batch-size'), 4)
    .option('--eta <eta>', 'DDIM η (0 deterministic, 1 = DDPM)', nonNegative('--eta'), 0)
    .option('--churn <s>', 'EDM S_churn for euler/heun', nonNegative('--churn'), 0)
    .addOption(
      new Option(
        '--spacing <kind>',
        'σ ladder: karras, uniform in time, or uniform in λ = −log σ (discrete-time models: on the nearest integer steps)',
      )
        .choices(['karras', 'uniform', 'lambda'] as const)
        .default('karras' as const),
    )
    .option(
      '--sigma-min <σ>',
      "the σ ladder's floor (VE σ): its last level before the final step to 0 (default: the model's recommended, else its schedule's smallest)",
      positive('--sigma-min'),
    );
}

/** How a source of another size becomes the model's input and comes back. */
function imageOptions<A extends unknown[], O extends OptionValues>(c: Command<A, O>) {
  return c
    .addOption(
      new Option(
        '--fit <how>',
        "a source whose size or aspect is not the model's: crop (centre; a square output), pad (whole, white around; output in the source's aspect) or stretch",
      )
        .choices(['crop', 'pad', 'stretch'] as const)
        .default('crop' as const),
    )
    .addOption(
      new Option(
        '--output-size <size>',
        "results at the model's scale, or brought to the source's own size (Lanczos3; an upscale adds no detail)",
      )
        .choices(['model', 'source'] as const)
        .default('model' as const),
    );
}

/** Text-conditioned (Stable Diffusion-family) models: prompts, CFG, the side latents are made at. */
function latentOptions<A extends unknown[], O extends OptionValues>(c: Command<A, O>) {
  return c
    .option(
      '--prompt <text>',
      "text-conditioned (Stable Diffusion-family) models: what the result should show (default: the folder's dg-studio.json, else none)",
    )
    .option('--negative-prompt <text>', "text-conditioned models: what it should not show (default: the folder's, else none)")
    .option(
      '--cfg <g>',
      "text-conditioned models: classifier-free guidance scale, ≤ 1: none, as SD-Turbo wants (default: the folder's, else 7.5)",
      nonNegative('--cfg'),
    )
    .option(
      '--max-side <px>',
      'latent models: the longest side an image is translated at (its aspect kept, sides multiples of 8)',
      positiveInt('--max-side'),
      512,
    );
}

/** Where results go (folder, names, gallery, resume, JSON lines) and on which provider the run is made. */
function outputOptions<A extends unknown[], O extends OptionValues>(c: Command<A, O>) {
  return c
    .option('--out <dir>', 'output folder', 'outputs')
    .option('--keep-names', 'name each output after its input (cat.jpg → cat.png + cat.json), for data-set work', false)
    .addOption(providerOption())
    .addOption(threadsOption())
    .option('--gallery <dir>', 'record results in this gallery (default: the studio gallery)')
    .option('--no-gallery', 'do not record results in a gallery')
    .option('--resume-run <id>', 'continue an interrupted gallery run (same inputs and parameters)', positiveInt('--resume-run'))
    .option('--json', 'print one JSON record per output on stdout', false);
}

/** Scale-out over BullMQ workers (docs/scale-out.md). */
function queueOptions<A extends unknown[], O extends OptionValues>(c: Command<A, O>) {
  return c
    .option(
      '--queue <redis-url>',
      'spread the batch over workers (dg-studio worker) through this Redis: redis://host:6379 (docs/scale-out.md)',
    )
    .option('--redis-password-file <file>', 'with --queue: read the Redis password from this file')
    .option('--chunk-size <n>', 'with --queue: images per chunk (default: 4 × --batch-size)', positiveInt('--chunk-size'));
}

/** The command and its options; their type is inferred from here, so a flag and the field it fills cannot drift. */
export function translateCommand(program: Command) {
  const c = program
    .command('translate')
    .description('translate images (files or folders) SDEdit-style, with optional discriminator guidance')
    .argument('<inputs...>', 'image files or folders of images')
    .option('--model <manifest>', 'score-model manifest or its folder (default: the bundled default)')
    .option(
      '--discriminator <manifest>',
      'discriminator manifest or its folder for guidance (default: the bundled one, but only when --model is not given)',
    )
    .option('--no-discriminator', 'plain SDEdit, no discriminator');
  return queueOptions(outputOptions(latentOptions(imageOptions(guidanceOptions(samplerOptions(c)))))).option(
    '--no-progress',
    'no progress bar',
  );
}
export type TranslateOptions = ReturnType<ReturnType<typeof translateCommand>['opts']>;
