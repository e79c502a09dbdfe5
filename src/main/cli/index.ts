#!/usr/bin/env node
/**
 * dg-studio command line: a thin adapter over the services. Each command is a file in commands/;
 * run.ts holds what they share (exit codes, errors, Ctrl-C, progress), options.ts the option parsers.
 */
import { Command } from '@commander-js/extra-typings';
import { ENGINE_VERSION } from '../../shared/version.js';
import { addGallery } from './commands/gallery.js';
import { addInspect } from './commands/inspect.js';
import { addServe } from './commands/serve.js';
import { addStudy } from './commands/study.js';
import { addSweep } from './commands/sweep.js';
import { addTrainDiscriminator } from './commands/train-discriminator.js';
import { addTrainScoreModel } from './commands/train-score-model.js';
import { addTranslate } from './commands/translate.js';
import { addWorker } from './commands/worker.js';
import { effectiveArgv, rerunIfLong } from './long-command-line.js';

/** The program: one file per command under commands/, added in the order `--help` lists them. */
export function buildProgram() {
  const program = new Command('dg-studio')
    .description('Image-to-image translation with diffusion models and Discriminator Guidance')
    .version(ENGINE_VERSION)
    .showHelpAfterError()
    // usage errors exit 2, like every other bad-input error of this CLI
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  for (const add of [
    addTranslate,
    addServe,
    addGallery,
    addStudy,
    addSweep,
    addTrainDiscriminator,
    addTrainScoreModel,
    addInspect,
    addWorker,
  ])
    add(program);
  return program;
}

/** The CLI's entry: parse the command line (re-run from a file when it is too long for ONNX Runtime) and run it. */
export async function main(argv: string[]): Promise<void> {
  const code = await rerunIfLong(argv);
  if (code !== null) process.exit(code);
  await buildProgram().parseAsync(effectiveArgv(argv));
}

const isMain = process.argv[1] && /cli(\/index)?\.(ts|js|mjs)$/.test(process.argv[1]);
if (isMain) {
  main(process.argv).catch((e: Error) => {
    console.error(`error: ${e.message}`);
    process.exit(2);
  });
}
