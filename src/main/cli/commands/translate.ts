/**
 * `dg-studio translate`: SDEdit translation of files and folders, with DG (and classifier guidance),
 * into PNGs with their parameters and the gallery.
 */
import type { Command } from '@commander-js/extra-typings';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';
import { SAMPLER_LABELS, TranslateParamsSchema, type TranslateParams } from '../../../shared/params.js';
import { manifestPathOf, readJsonFile } from '../../engine/models/score-model.js';
import { Gallery } from '../../services/gallery.js';
import { bundledDefaults, defaultGalleryDir } from '../../services/resources.js';
import { translateOnQueue, type QueueTranslateRequest } from '../../services/scale-out/submit.js';
import { translateFiles, type TranslateEvents } from '../../services/translate-files.js';
import { translateLatentFiles } from '../../services/translate-latent-files.js';
import { isDiffusersFolder, LATENT_DEFAULTS_FILE, readDiffusersFolder } from '../../engine/models/diffusers-folder.js';
import { translateCommand, type TranslateOptions } from './translate-options.js';
import { abortOnSigint, EXIT_NOTHING_DONE, EXIT_OK, EXIT_SOME_FAILED, progressBar, runAction } from '../run.js';

export function addTranslate(program: Command): void {
  translateCommand(program).action((inputs, o, cmd) =>
    runAction(() => runTranslate(inputs, o, (flag) => cmd.getOptionValueSource(flag) === 'cli')),
  );
}

/**
 * A manifest's recommended setting (a score model's `recommendedT0`, a discriminator's `recommendedWeight`),
 * else `fallback`; an unreadable manifest is reported later, when loaded, and the value it gives is checked there.
 */
async function recommended(manifest: string, field: 'recommendedT0' | 'recommendedWeight', fallback: number): Promise<number> {
  const m = (await readJsonFile(manifestPathOf(manifest), 'manifest').catch(() => ({}))) as Record<string, unknown>;
  const v = m[field];
  return typeof v === 'number' && v >= 0 ? v : fallback;
}

/** The models a run uses: --model, else the bundled default with its discriminator (unless --no-discriminator). */
function chosenModels(o: TranslateOptions): { modelManifest: string; discriminatorManifest: string | undefined } {
  let discriminatorManifest = o.discriminator === false ? undefined : o.discriminator;
  const defaults = o.model ? null : bundledDefaults();
  if (defaults) {
    if (o.discriminator === undefined && defaults.discriminator) discriminatorManifest = defaults.discriminator;
    if (defaults.note) console.error(`note: ${defaults.note}`);
  }
  return { modelManifest: o.model ?? defaults!.scoreModel, discriminatorManifest };
}

/** The translation parameters of the options, the models' recommendations filling what was not given. */
async function chosenParams(o: TranslateOptions, modelManifest: string, discriminatorManifest: string | undefined) {
  // the DG weight applies only when there is a discriminator (asked for without one, translate
  // warns); its default is the discriminator's recommended weight, else 1
  const dgWeight = o.dgWeight ?? (discriminatorManifest ? await recommended(discriminatorManifest, 'recommendedWeight', 1) : 0);
  return TranslateParamsSchema.safeParse({
    t0: o.t0 ?? (await recommended(modelManifest, 'recommendedT0', 0.5)),
    steps: o.steps,
    sampler: o.sampler,
    seed: o.seed,
    batchSize: o.batchSize,
    dgWeight,
    dgWeight2: o.dgWeight2 ?? null,
    dgWindow: o.dgWindow,
    boosting: o.boostPeriod ? { period: o.boostPeriod, churn: o.boostChurn } : null,
    eta: o.eta,
    churn: o.churn,
    spacing: o.spacing,
    sigmaMin: o.sigmaMin ?? null,
    classLabel: o.classLabel ?? null,
    cgWeight: o.cgWeight ?? (o.classifier ? 1 : 0),
    fit: o.fit,
    outputSize: o.outputSize,
  });
}

/** The CLI's lines for a pixel-model run: its cost first, then each result, error and warning. */
function translateEvents(o: TranslateOptions, p: TranslateParams, bar: ReturnType<typeof progressBar>): TranslateEvents {
  return {
    onStart: (s) => {
      const sampler = SAMPLER_LABELS[p.sampler];
      const merged = s.steps < p.steps ? ` (${p.steps} asked; the model's discrete steps allow ${s.steps} distinct ones)` : '';
      console.error(
        `${sampler}, ${s.steps} steps over [0, ${p.t0}]${merged} = ${s.evaluations} network evaluation${s.evaluations === 1 ? '' : 's'} per image`,
      );
      console.error(
        `translating ${s.total} image(s) with "${s.model}"${s.discriminator ? ` + DG "${s.discriminator}" (w = ${p.dgWeight})` : ''}` +
          `${s.classifier ? ` + CG "${s.classifier}" (w = ${p.cgWeight})` : ''} on ${s.provider}`,
      );
      bar?.start(s.total * p.steps, 0, { done: 0, total: s.total, step: 0, steps: p.steps });
    },
    onStep: (s) => bar?.update(s.done * s.steps + s.step, { done: s.done, total: s.total, step: s.step, steps: s.steps }),
    onResult: (r) => {
      if (o.json) console.log(JSON.stringify(r));
      else if (!bar) console.error(`wrote ${r.output}`);
    },
    onError: (e) => {
      bar?.stop();
      console.error(`error: ${e.message}`);
    },
    onWarning: (m) => console.error(`warning: ${m}`),
  };
}

/** Whether the command line gave an option (not its default), by its attribute name. */
type Given = (option: string) => boolean;

async function runTranslate(inputs: string[], o: TranslateOptions, given: Given): Promise<number> {
  if (o.model && isDiffusersFolder(o.model)) return runLatent(inputs, o, o.model, given);
  const { modelManifest, discriminatorManifest } = chosenModels(o);
  const params = await chosenParams(o, modelManifest, discriminatorManifest);
  if (!params.success) return refused(params.error);
  const { bar, signal, gallery } = await runSetup(o);
  let runInputs = inputs;
  let runParams = params.data;
  if (o.resumeRun !== undefined) {
    const run = gallery?.run(o.resumeRun);
    if (!run) {
      console.error(`error: the gallery has no run ${o.resumeRun}`);
      gallery?.db.close();
      return EXIT_NOTHING_DONE;
    }
    [runInputs, runParams] = [run.inputs, run.params];
  }
  const work = {
    inputs: runInputs,
    outDir: o.out,
    params: runParams,
    modelManifest,
    discriminatorManifest,
    gallery,
    resumeRunId: o.resumeRun,
  };
  try {
    if (o.queue) return await runOnQueue(o.queue, o, { ...work, chunkSize: o.chunkSize }, signal);
    const { outputs, errors } = await translateFiles(
      { ...work, executionProvider: o.provider, threads: o.threads, keepNames: o.keepNames, classifierManifest: o.classifier },
      translateEvents(o, runParams, bar),
      signal,
    );
    bar?.stop();
    console.error(`done: ${outputs.length} written to ${o.out}${errors.length ? `, ${errors.length} failed` : ''}`);
    return errors.length ? EXIT_SOME_FAILED : EXIT_OK;
  } catch (e) {
    bar?.stop();
    const err = e as Error;
    if (err.name !== 'CancelledError') throw err;
    console.error('cancelled: images written so far are kept');
    return EXIT_NOTHING_DONE;
  } finally {
    gallery?.db.close();
  }
}

/** Parameters the schema refused: each problem on its own line. */
function refused(error: z.ZodError): number {
  for (const i of error.issues) console.error(`error: ${i.path.join('.')}: ${i.message}`);
  return EXIT_NOTHING_DONE;
}

/** A run's progress bar, Ctrl-C and gallery (unless --no-gallery). */
async function runSetup(o: TranslateOptions) {
  const bar = progressBar('{bar} {percentage}% | image {done}/{total} | step {step}/{steps}', o.progress);
  const signal = abortOnSigint('cancelling…');
  const gallery = o.gallery === false ? undefined : await Gallery.open(typeof o.gallery === 'string' ? o.gallery : defaultGalleryDir());
  return { bar, signal, gallery };
}

/** A Stable Diffusion-family folder (diffusers' ONNX layout): latent SDEdit with the prompt (issue 27). */
async function runLatent(inputs: string[], o: TranslateOptions, modelFolder: string, given: Given): Promise<number> {
  // DG only with a discriminator trained on this model's latents (train-discriminator --model <folder>), never the bundled pixel one
  const discriminator = typeof o.discriminator === 'string' ? o.discriminator : undefined;
  if (!discriminator && o.dgWeight) console.error('note: --dg-weight without --discriminator: latent models have no default discriminator');
  const dgWeight = discriminator ? (o.dgWeight ?? (await recommended(discriminator, 'recommendedWeight', 1))) : 0;
  // what the flags leave out, the folder's own dg-studio.json suggests (said, so a run is never a surprise)
  const d = readDiffusersFolder(modelFolder).defaults;
  const fromFolder: string[] = [];
  /** the flag when typed, else the folder's suggestion (noted), else the flag's own default */
  const choose = <T>(flag: string, typed: T, suggested: T | undefined, said: (v: T) => string, fallback: T): T => {
    if (given(flag)) return typed;
    if (suggested === undefined) return fallback;
    fromFolder.push(said(suggested));
    return suggested;
  };
  const prompt = choose('prompt', o.prompt, d.prompt, (v) => `prompt "${v}"`, '');
  const negativePrompt = choose('negativePrompt', o.negativePrompt, d.negativePrompt, (v) => `negative prompt "${v}"`, '');
  const cfgScale = choose('cfg', o.cfg, d.cfgScale, (v) => `CFG ${v}`, 7.5);
  const t0 = choose('t0', o.t0, d.recommendedT0, (v) => `t0 ${v}`, 0.6);
  const steps = choose('steps', o.steps, d.steps, (v) => `${v} step${v === 1 ? '' : 's'}`, o.steps);
  const sampler = choose('sampler', o.sampler, d.sampler, (v) => `sampler ${v}`, o.sampler);
  if (fromFolder.length) console.error(`note: ${fromFolder.join(', ')} from ${join(modelFolder, LATENT_DEFAULTS_FILE)}`);
  const params = TranslateParamsSchema.safeParse({
    dgWeight,
    dgWeight2: o.dgWeight2 ?? null,
    ...(o.dgWindow ? { dgWindow: o.dgWindow } : {}),
    t0,
    steps,
    sampler,
    seed: o.seed,
    eta: o.eta,
    churn: o.churn,
    spacing: o.spacing,
    sigmaMin: o.sigmaMin ?? null,
    prompt,
    negativePrompt,
    cfgScale,
  });
  if (!params.success) return refused(params.error);
  const { bar, signal, gallery } = await runSetup(o);
  try {
    const { outputs, errors } = await translateLatentFiles(
      {
        inputs,
        outDir: o.out,
        params: params.data,
        modelFolder,
        discriminator,
        keepNames: o.keepNames,
        maxSide: o.maxSide,
        executionProvider: o.provider,
        threads: o.threads,
        gallery,
      },
      {
        onStart: (s) => {
          console.error(
            `translating ${s.total} image(s) with "${s.model}" (latent, CFG ${params.data.cfgScale}${discriminator ? `, DG w = ${params.data.dgWeight}` : ''}) on ${s.provider}`,
          );
          bar?.start(s.total * params.data.steps, 0, { done: 0, total: s.total, step: 0, steps: params.data.steps });
        },
        onStep: (s) => bar?.update(s.done * s.steps + s.step, { done: s.done, total: s.total, step: s.step, steps: s.steps }),
        onResult: (r) => {
          if (o.json) console.log(JSON.stringify(r));
          else if (!bar) console.error(`wrote ${r.output}`);
        },
        onError: (e) => console.error(`error: ${e.file}: ${e.message}`),
        onNote: (m) => console.error(`note: ${m}`),
        onWarning: (m) => console.error(`warning: ${m}`),
      },
      signal,
    );
    bar?.stop();
    console.error(`done: ${outputs.length} written to ${o.out}${errors.length ? `, ${errors.length} failed` : ''}`);
    return errors.length ? (outputs.length ? EXIT_SOME_FAILED : EXIT_NOTHING_DONE) : EXIT_OK;
  } catch (e) {
    bar?.stop();
    if ((e as Error).name !== 'CancelledError') throw e;
    console.error('cancelled: images written so far are kept');
    return EXIT_NOTHING_DONE;
  } finally {
    gallery?.db.close();
  }
}

/** The batch over the queue's workers: one progress bar over all of them (images/s, workers seen). */
async function runOnQueue(
  redis: string,
  o: TranslateOptions,
  req: Omit<QueueTranslateRequest, 'redis' | 'redisPassword'>,
  signal: AbortSignal,
): Promise<number> {
  const redisPassword = o.redisPasswordFile ? (await readFile(o.redisPasswordFile, 'utf8')).trim() : undefined;
  const bar = progressBar('{bar} {percentage}% | image {value}/{total} | {workers} worker(s) | {rate} img/s | ETA {eta}s', o.progress);
  const r = await translateOnQueue(
    { ...req, redis, redisPassword },
    {
      onStart: (s) => {
        console.error(
          `queued ${s.queued} of ${s.chunks} chunk(s) for ${s.total} image(s) on ${new URL(redis).host}${s.runId ? ` (gallery run ${s.runId}: resume with --resume-run ${s.runId})` : ''}`,
        );
        bar?.start(s.total, 0, { workers: 0, rate: '0.0' });
      },
      onProgress: (p) => bar?.update(p.done, { workers: p.workers, rate: p.imagesPerSecond.toFixed(1) }),
      onResult: (r) => {
        if (o.json) console.log(JSON.stringify(r));
        else if (!bar) console.error(`wrote ${r.output}`);
      },
      onError: (e) => {
        bar?.stop();
        console.error(`error: ${e.file}: ${e.message}`);
      },
      onWarning: (m) => console.error(`warning: ${m}`),
    },
    signal,
  );
  bar?.stop();
  console.error(`done: ${r.outputs} written to ${o.out}${r.errors ? `, ${r.errors} failed` : ''}`);
  return r.errors ? EXIT_SOME_FAILED : EXIT_OK;
}
