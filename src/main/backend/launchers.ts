/**
 * The back end's long work, each a job on the queue: translations, sweeps, path diagnostics and the two
 * trainings. A launcher checks the request against what exists (inbox ids, models, names) before it
 * queues anything, so a bad request fails at once and in words.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { TranslateParams } from '../../shared/params.js';
import type { ApiParsedArgs, JobKind, JobResults, StudioEvent, TrainingProgress } from '../../shared/api.js';
import { encodePng, sideBySide, writeFileAtomic } from '../engine/io/image-io.js';
import type { Gallery } from '../services/gallery.js';
import type { JobFn, JobInfo, JobQueue } from '../services/jobs.js';
import { diagnosePaths } from '../services/path-diagnostics.js';
import { runSweep } from '../services/sweep.js';
import { trainDiscriminatorOnThread, trainScoreModelOnThread } from '../services/training-thread.js';
import { translateOnQueue } from '../services/scale-out/submit.js';
import { translateFiles } from '../services/translate-files.js';
import { translateLatentFiles } from '../services/translate-latent-files.js';
import { isDiffusersFolder } from '../engine/models/diffusers-folder.js';
import type { Inbox } from './inbox.js';
import type { ModelRegistry, SessionChoice } from './model-registry.js';

/** What a launcher needs of the back end. */
export interface LaunchContext {
  readonly jobs: JobQueue;
  readonly gallery: Gallery;
  readonly home: string;
  readonly inbox: Inbox;
  readonly models: ModelRegistry;
  /** the execution provider and threads of the settings */
  readonly session: SessionChoice;
  /** where translations are written: the settings' output folder, else the data folder's */
  readonly outputDir: string;
  /** the settings' Redis of scale-out workers, or null (translate here) */
  readonly queue: string | null;
  emit(e: StudioEvent): void;
}

/** Queue a job of one kind whose function returns that kind's result (JobDto's union relies on it). */
function submitJob<K extends JobKind>(
  ctx: LaunchContext,
  kind: K,
  label: string,
  fn: (...a: Parameters<JobFn>) => Promise<JobResults[K]>,
): JobInfo {
  // trainings run beside interactive work on their own runner, pausing while it runs (jobs.ts)
  const lane = kind === 'train-discriminator' || kind === 'train-score-model' ? 'background' : 'interactive';
  return ctx.jobs.submit(kind, label, fn, { lane });
}

export async function launchTranslate(ctx: LaunchContext, req: ApiParsedArgs<'translate'>[0]) {
  const inputs = await ctx.inbox.paths(req.sources);
  const modelManifest = (await ctx.models.manifestOf(req.model, 'score'))!;
  if (isDiffusersFolder(modelManifest)) return submitLatentTranslation(ctx, inputs, modelManifest, req.params, req.discriminator);
  const guided = req.params.dgWeight > 0 || (req.params.dgWeight2 ?? 0) > 0;
  const discriminatorManifest = guided ? await ctx.models.manifestOf(req.discriminator, 'discriminator') : undefined;
  if (guided && !discriminatorManifest)
    throw new Error('a DG weight above 0 needs a discriminator, and none is bundled: train or import one, or set the DG weight to 0');
  const classifierManifest = req.params.cgWeight > 0 ? await ctx.models.manifestOf(req.classifier, 'classifier') : undefined;
  if (req.params.cgWeight > 0 && !classifierManifest)
    throw new Error('a CG weight above 0 needs a classifier: import one (Settings → Import model) and pick it, or set the CG weight to 0');
  return submitTranslation(ctx, `${inputs.length} image(s), t0 ${req.params.t0}, w ${req.params.dgWeight}`, {
    inputs,
    params: req.params,
    modelManifest,
    discriminatorManifest,
    classifierManifest,
  });
}

/** What a translation job translates: its files, parameters and models (and the run it finishes, if any). */
interface TranslationWork {
  inputs: string[];
  params: TranslateParams;
  modelManifest: string;
  discriminatorManifest: string | undefined;
  classifierManifest?: string | undefined;
  resumeRunId?: number;
}

/** A translation with a Stable Diffusion-family folder (issue 27): latent SDEdit with the prompt, each image at its aspect. */
async function submitLatentTranslation(
  ctx: LaunchContext,
  inputs: string[],
  modelFolder: string,
  params: TranslateParams,
  discriminatorId: string | null,
) {
  const guided = params.dgWeight > 0 || (params.dgWeight2 ?? 0) > 0;
  // the bundled discriminator is a pixel one: DG for a latent model needs one trained on its latents, picked by name
  if (guided && discriminatorId === null)
    throw new Error(
      'DG for a latent model needs a discriminator trained on its latents (dg-studio train-discriminator --model <its folder>, then import it): pick it, or set the DG weight to 0',
    );
  const discriminator = guided ? await ctx.models.manifestOf(discriminatorId, 'discriminator') : undefined;
  const label = `${inputs.length} image(s), t0 ${params.t0}, "${params.prompt.slice(0, 40)}", CFG ${params.cfgScale}${guided ? `, w ${params.dgWeight}` : ''}`;
  const job = submitJob(ctx, 'translate', label, async ({ signal, progress }) => {
    const galleryIds: number[] = [];
    let note = '';
    const { errors } = await translateLatentFiles(
      {
        inputs,
        outDir: ctx.outputDir,
        params,
        modelFolder,
        discriminator,
        gallery: ctx.gallery,
        sourceNames: Object.fromEntries(inputs.map((p) => [p, ctx.inbox.sourceOf(p).name])),
        ...ctx.session,
      },
      {
        onStep: (s) =>
          progress({
            done: s.done * s.steps + s.step,
            total: s.total * s.steps,
            message: `image ${s.done + 1}/${s.total}, step ${s.step}/${s.steps}${note ? ` — ${note}` : ''}`,
          }),
        onResult: (r) => {
          if (r.galleryId !== undefined) galleryIds.push(r.galleryId);
          ctx.emit({ type: 'gallery' });
        },
        // the latest size change or cut prompt, shown with the progress
        onNote: (m) => (note = m),
        onWarning: (m) => (note = m),
      },
      signal,
    );
    return { galleryIds, errors };
  });
  return { jobId: job.id };
}

/** A studio translation spread over the settings' queue workers (docs/scale-out.md): progress over all of them. */
async function translateOverQueue(
  ctx: LaunchContext,
  redis: string,
  w: TranslationWork & { outDir: string; sourceNames: Record<string, string> },
  signal: AbortSignal,
  progress: Parameters<JobFn>[0]['progress'],
): Promise<JobResults['translate']> {
  const galleryIds: number[] = [];
  const errors: { file: string; message: string }[] = [];
  await translateOnQueue(
    { ...w, redis, gallery: ctx.gallery },
    {
      onProgress: (p) =>
        progress({
          done: p.done,
          total: p.total,
          message: `image ${p.done}/${p.total} on ${p.workers} worker(s), ${p.imagesPerSecond.toFixed(1)} img/s`,
        }),
      onResult: (r) => {
        if (r.galleryId !== undefined) galleryIds.push(r.galleryId);
        ctx.emit({ type: 'gallery' });
      },
      onError: (e) => errors.push(e),
    },
    signal,
  );
  return { galleryIds, errors };
}

/** Queue a translation into the gallery and the output folder, with progress and live previews. */
function submitTranslation(ctx: LaunchContext, label: string, w: TranslationWork) {
  const outDir = ctx.outputDir;
  const session = ctx.session;
  const sourceNames = Object.fromEntries(w.inputs.map((p) => [p, ctx.inbox.sourceOf(p).name]));
  const job = submitJob(ctx, 'translate', label, async ({ signal, progress }) => {
    if (ctx.queue && !w.classifierManifest) return translateOverQueue(ctx, ctx.queue, { ...w, outDir, sourceNames }, signal, progress);
    let last = 0;
    const { outputs, errors } = await translateFiles(
      {
        ...w,
        outDir,
        gallery: ctx.gallery,
        // outputs are named after the names the user's files had, not the inbox's digests
        sourceNames,
        ...session,
      },
      {
        onStep: (s) => {
          const now = Date.now();
          const at = {
            done: s.done * s.steps + s.step,
            total: s.total * s.steps,
            message: `image ${s.done + 1}/${s.total}, step ${s.step}/${s.steps}`,
          };
          if (s.preview && now - last > 250) {
            last = now;
            // the whole batch's current estimates side by side (up to 4), not just its first image
            const [, c, h] = s.preview.shape as [number, number, number, number];
            const strip = sideBySide(s.preview.data, s.preview.shape);
            void encodePng(strip.chw, { channels: c as 1 | 3, height: h, width: strip.width, valueRange: [-1, 1] }).then((png) =>
              progress({ ...at, preview: png }),
            );
          } else progress(at);
        },
        onResult: () => ctx.emit({ type: 'gallery' }),
      },
      signal,
    );
    return { galleryIds: outputs.flatMap((o) => (o.galleryId === undefined ? [] : [o.galleryId])), errors };
  });
  return { jobId: job.id };
}

/**
 * Finish an interrupted run: the sources still without a result, with the run's own parameters, and its
 * model and discriminator found again by name (a missing one is an error that names it).
 */
export async function launchResume(ctx: LaunchContext, runId: number) {
  const run = ctx.gallery.run(runId);
  if (!run) throw new Error(`the gallery has no run ${runId}`);
  if (run.status !== 'interrupted' && run.status !== 'cancelled')
    throw new Error(`run ${runId} is ${run.status}: only an interrupted or cancelled run can be resumed`);
  if (run.params.cgWeight > 0)
    throw new Error(`run ${runId} used classifier guidance: finish it with "dg-studio translate --resume-run ${runId} --classifier …"`);
  const missing = run.inputs.filter((f) => !existsSync(f));
  if (missing.length)
    throw new Error(`${missing.length} of run ${runId}'s source images are no longer in the inbox; add them again and run anew`);
  const entries = await ctx.models.entries();
  const byName = (kind: 'score' | 'discriminator', name: string) => {
    const e = entries.find((m) => m.kind === kind && m.name === name);
    if (!e)
      throw new Error(
        `run ${runId} was made with the ${kind === 'score' ? 'model' : 'discriminator'} "${name}", which is no longer in the list`,
      );
    return e.manifest;
  };
  const modelManifest = byName('score', run.model.name);
  const discriminatorManifest = run.discriminator ? byName('discriminator', run.discriminator.name) : undefined;
  return submitTranslation(ctx, `resume run #${runId}: ${run.inputs.length} image(s), t0 ${run.params.t0}, w ${run.params.dgWeight}`, {
    inputs: run.inputs,
    params: run.params,
    modelManifest,
    discriminatorManifest,
    resumeRunId: runId,
  });
}

export async function launchSweep(ctx: LaunchContext, req: ApiParsedArgs<'sweep'>[0]) {
  const inputs = await ctx.inbox.paths(req.sources);
  const reference = await ctx.inbox.paths(req.reference);
  const modelManifest = (await ctx.models.manifestOf(req.model, 'score'))!;
  const discriminatorManifest = req.weights.some((w) => w > 0)
    ? await ctx.models.manifestOf(req.discriminator, 'discriminator')
    : undefined;
  const job = submitJob(ctx, 'sweep', `sweep ${req.t0s.length}×${req.weights.length}`, async ({ signal, progress }) => {
    const outDir = join(ctx.home, 'sweeps', `${Date.now()}`);
    const total = req.t0s.length * req.weights.length;
    let done = 0;
    const r = await runSweep(
      {
        inputs,
        reference,
        t0s: req.t0s,
        weights: req.weights,
        modelManifest,
        discriminatorManifest,
        params: req.params,
        outDir,
        ...ctx.session,
      },
      { onRow: (row) => progress({ done: ++done, total, message: `t0 ${row.t0}, w ${row.w}` }) },
      signal,
    );
    // one example image per (t0, w) cell for the grid: the first source's translation
    const first = basename(inputs[0]!, extname(inputs[0]!));
    const cells = [];
    for (const row of r.rows)
      cells.push({ t0: row.t0, w: row.w, image: await keepPlot(ctx.home, join(outDir, `t${row.t0}_w${row.w}`, `${first}.png`)) });
    const untranslated = r.untranslated && { swd: r.untranslated.swd, fd: r.untranslated.fd, kid: r.untranslated.kid };
    return { rows: r.rows, plot: await keepPlot(ctx.home, r.plots[0]!), cells, untranslated };
  });
  return { jobId: job.id };
}

export async function launchDiagnosePaths(ctx: LaunchContext, req: ApiParsedArgs<'diagnosePaths'>[0]) {
  const sources = await ctx.inbox.paths(req.sources);
  const reference = await ctx.inbox.paths(req.reference);
  const modelManifest = (await ctx.models.manifestOf(req.model, 'score'))!;
  const discriminatorManifest = (await ctx.models.manifestOf(req.discriminator, 'discriminator'))!;
  const job = submitJob(ctx, 'paths', `log r along paths, t0 ${req.t0}, w ${req.weight}`, async () => {
    const r = await diagnosePaths({
      sources,
      reference,
      modelManifest,
      discriminatorManifest,
      t0: req.t0,
      weight: req.weight,
      params: req.params,
      outDir: join(ctx.home, 'paths', `${Date.now()}`),
      ...ctx.session,
    });
    return { rows: r.rows, plot: await keepPlot(ctx.home, r.plotPath) };
  });
  return { jobId: job.id };
}

export async function launchTrainDiscriminator(ctx: LaunchContext, req: ApiParsedArgs<'trainDiscriminator'>[0]) {
  const sources = await ctx.inbox.paths(req.sources);
  const targets = await ctx.inbox.paths(req.targets);
  const modelManifest = (await ctx.models.manifestOf(req.model, 'score'))!;
  if (req.latent && !isDiffusersFolder(modelManifest))
    throw new Error('image size, prompt and CFG are for latent (Stable Diffusion-family) models; this target model works on pixels');
  const outDir = join(ctx.home, 'discriminators', req.name);
  if (existsSync(outDir)) throw new Error(`a discriminator named "${req.name}" exists already; choose another name (or delete it first)`);
  const refine = req.refine === null ? undefined : { discriminator: (await ctx.models.manifestOf(req.refine, 'discriminator'))! };
  const job = submitJob(ctx, 'train-discriminator', `train discriminator "${req.name}"`, async ({ signal, progress, pause }) => {
    const losses: number[] = [];
    const r = await trainDiscriminatorOnThread(
      {
        pauseFlag: pause,
        modelManifest,
        sources,
        targets,
        outDir,
        t0Range: req.t0Range,
        steps: req.steps,
        batchSize: req.batchSize,
        ...(req.latent ? { latent: req.latent } : {}),
        ...(req.downsample ? { downsample: req.downsample } : {}),
        labelSmoothing: req.labelSmoothing,
        r1Gamma: req.r1Gamma,
        ...(refine ? { refine } : {}),
        evalEvery: Math.max(10, Math.floor(req.steps / 4)),
        ...ctx.session,
      },
      {
        onProgress: (p) => {
          losses.push(p.lossEma);
          const training = {
            loss: p.lossEma,
            losses: losses.slice(-200),
            imagesPerSecond: p.itemsPerSecond,
            etaSeconds: null,
            heldout: null,
          };
          progress({ done: p.step, total: p.steps, message: `step ${p.step}/${p.steps}, loss ${p.lossEma.toFixed(4)}`, training });
        },
      },
      signal,
    );
    return {
      manifest: r.manifestPath,
      steps: r.steps,
      accuracy: r.validation.accuracy,
      cancelled: r.cancelled,
      id: `trained:${req.name}`,
    };
  });
  return { jobId: job.id };
}

/** Train a target score model from target images (the app's own trainer); the model joins the list. */
export async function launchTrainScoreModel(ctx: LaunchContext, req: ApiParsedArgs<'trainScoreModel'>[0]) {
  const targets = await ctx.inbox.paths(req.targets);
  const previewSources = await ctx.inbox.paths(req.previewSources);
  const outDir = join(ctx.home, 'score-models', req.name);
  if (existsSync(outDir)) throw new Error(`a score model named "${req.name}" exists already; choose another name (or delete it first)`);
  const job = submitJob(ctx, 'train-score-model', `train score model "${req.name}"`, async ({ signal, progress, pause }) => {
    const losses: number[] = [];
    let lastStep = 0;
    let training: TrainingProgress = { loss: null, losses: [], imagesPerSecond: null, etaSeconds: null, heldout: null };
    const report = (step: number, changes: Partial<TrainingProgress>, preview?: Uint8Array) => {
      lastStep = step;
      training = { ...training, ...changes, losses: losses.slice(-200) };
      const loss = training.loss === null ? '' : `, loss ${training.loss.toFixed(4)}`;
      progress({ done: step, total: req.steps, message: `step ${step}/${req.steps}${loss}`, training, ...(preview ? { preview } : {}) });
    };
    const r = await trainScoreModelOnThread(
      {
        pauseFlag: pause,
        data: targets,
        previewSources,
        outDir,
        arch: { channels: req.channels, patch: req.patch, resolution: req.resolution, groups: Math.min(8, req.channels) },
        batchSize: req.batchSize,
        tMax: req.tMax,
        precond: req.precond,
        steps: req.steps,
        checkpointMinutes: 3,
        evalMinutes: 5,
        name: req.name,
        ...ctx.session,
      },
      {
        onProgress: (p) => {
          losses.push(p.lossEma);
          report(p.step, { loss: p.lossEma, imagesPerSecond: p.imagesPerSecond, etaSeconds: p.etaSeconds });
        },
        onPreview: (png) => report(lastStep, {}, png),
        onEval: (e) => report(e.step, { heldout: e.errors }),
      },
      signal,
    );
    report(r.steps, { heldout: r.heldout });
    return { manifest: r.manifestPath, steps: r.steps, cancelled: r.cancelled, heldout: r.heldout, id: `trained-score:${req.name}` };
  });
  return { jobId: job.id };
}

/** Keep a plot PNG where resolveFile can serve it; returns its file reference. */
export async function keepPlot(home: string, path: string): Promise<string> {
  await mkdir(join(home, 'plots'), { recursive: true });
  const plot = await readFile(path);
  const sha = createHash('sha256').update(plot).digest('hex').slice(0, 32);
  await writeFileAtomic(join(home, 'plots', `${sha}.png`), plot);
  return `plot/${sha}`;
}
