/** `dg-studio sweep` and `dg-studio diagnose-paths`: measuring the realism–faithfulness trade-off. */
import type { Command } from '@commander-js/extra-typings';
import { diagnosePaths } from '../../services/path-diagnostics.js';
import { bundledDefaults } from '../../services/resources.js';
import { runSweep } from '../../services/sweep.js';
import {
  fraction,
  list,
  nonNegative,
  positiveInt,
  providerOption,
  samplerOption,
  seedOption,
  stepsOption,
  threadsOption,
} from '../options.js';
import { runAction } from '../run.js';

/** `sweep`: a t0 × w grid measured (CSV, JSON, frontier plots). */
function sweepCommand(program: Command) {
  program
    .command('sweep')
    .description('translate over a t0 × DG-weight grid and measure realism against faithfulness (CSV, JSON, frontier plots)')
    .argument('<inputs...>', 'source images (files or folders)')
    .requiredOption('--reference <dirs...>', 'target-domain reference images for the realism metrics')
    .option('--ground-truth <dirs...>', 'true targets, matched to sources by file name (paired metrics)')
    .option('--others <dirs...>', 'target-domain images of other subjects: how real images score without sharing the reference’s subjects')
    .option('--other-draws <n>', 'random draws of --others, each as large as the source set', positiveInt('--other-draws'), 3)
    .option('--t0 <list>', 't0 values', list('--t0'), [0.2, 0.4, 0.6])
    .option('--dg-weight <list>', 'DG weights (0 = plain SDEdit)', list('--dg-weight'), [0, 1, 2])
    .option('--model <manifest>', 'score-model manifest (default: the bundled default)')
    .option('--discriminator <manifest>', 'discriminator manifest (default: the bundled one)')
    .addOption(stepsOption())
    .addOption(samplerOption())
    .addOption(seedOption('seed of the first image'))
    .option('--batch-size <n>', 'images per model call', positiveInt('--batch-size'), 4)
    .option('--features <onnx>', 'feature extractor ONNX for Fréchet distance and KID (default: fixed random conv features)')
    .option('--feature-output <name>', 'output of the feature extractor to use')
    .option('--no-images', 'do not write the translated images')
    .requiredOption('--out <dir>', 'output folder')
    .addOption(providerOption())
    .addOption(threadsOption())
    .action((inputs, o) =>
      runAction(async () => {
        const defaults = o.model ? null : bundledDefaults();
        const { plots, others, untranslated } = await runSweep(
          {
            inputs,
            reference: o.reference,
            groundTruth: o.groundTruth,
            others: o.others ? { files: o.others, draws: o.otherDraws } : undefined,
            t0s: o.t0,
            weights: o.dgWeight,
            modelManifest: o.model ?? defaults!.scoreModel,
            discriminatorManifest: o.discriminator ?? defaults?.discriminator ?? undefined,
            params: { steps: o.steps, sampler: o.sampler, seed: o.seed, batchSize: o.batchSize },
            outDir: o.out,
            features: o.features ? { onnx: o.features, output: o.featureOutput } : undefined,
            writeImages: o.images,
            executionProvider: o.provider,
            threads: o.threads,
          },
          {
            onStage: (m) => console.error(m),
            onRow: (r) =>
              console.error(
                `t0 ${r.t0} w ${r.w}: L2→source ${r.l2Source.toFixed(4)}, SSIM ${r.ssimSource.toFixed(3)}, SWD ${r.swd.toFixed(2)}, FD ${r.fd.toFixed(3)}, KID ${r.kid.toFixed(4)}` +
                  (r.l2Truth !== null ? `, L2→truth ${r.l2Truth.toFixed(4)}` : ''),
              ),
          },
        );
        if (untranslated)
          console.error(
            `the sources, untranslated (${untranslated.images}): SWD ${untranslated.swd.toFixed(2)}, FD ${untranslated.fd.toFixed(3)}, KID ${untranslated.kid.toFixed(4)}`,
          );
        for (const [i, r] of others.entries())
          console.error(
            `real targets of other subjects, draw ${i + 1} (${r.images}): SWD ${r.swd.toFixed(2)}, FD ${r.fd.toFixed(3)}, KID ${r.kid.toFixed(4)}`,
          );
        console.error(`wrote ${o.out}/results.csv, results.json, ${plots.map((p) => p.split('/').pop()).join(', ')}`);
      }),
    );
}

/** `diagnose-paths`: log r along real, unguided and guided paths (paper Fig. 8). */
function diagnosePathsCommand(program: Command) {
  program
    .command('diagnose-paths')
    .description('log r along time for real forward paths, unguided and guided sampling paths (paper Fig. 8): CSV + PNG')
    .argument('<inputs...>', 'source images (files or folders)')
    .requiredOption('--reference <dirs...>', 'target-domain images for the real forward paths')
    .option('--model <manifest>', 'score-model manifest (default: the bundled default)')
    .option('--discriminator <manifest>', 'discriminator manifest (default: the bundled one)')
    .option('--t0 <t>', 'SDEdit start time', fraction('--t0'), 0.6)
    .option('--dg-weight <w>', 'DG weight of the guided paths', nonNegative('--dg-weight'), 1)
    .addOption(stepsOption())
    .addOption(seedOption('seed'))
    .requiredOption('--out <dir>', 'output folder')
    .action((inputs, o) =>
      runAction(async () => {
        const d = o.model && o.discriminator ? null : bundledDefaults();
        const disc = o.discriminator ?? d?.discriminator;
        if (!disc) throw new Error('give a discriminator (--discriminator)');
        const r = await diagnosePaths({
          sources: inputs,
          reference: o.reference,
          modelManifest: o.model ?? d!.scoreModel,
          discriminatorManifest: disc,
          t0: o.t0,
          weight: o.dgWeight,
          params: { steps: o.steps, seed: o.seed },
          outDir: o.out,
        });
        console.error(`wrote ${r.csvPath} and ${r.plotPath}`);
      }),
    );
}

export function addSweep(program: Command): void {
  sweepCommand(program);
  diagnosePathsCommand(program);
}
