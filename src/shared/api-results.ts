/**
 * What the back end sends back (part of the one contract, shared/api.ts): models, sources, gallery items,
 * jobs by kind with their typed progress and results, sweep rows, events. Types only, bar StudioInfo's
 * schema: results come from the trusted back end and are not re-validated.
 */
import { z } from 'zod';
import type { SAMPLER_NAMES, TranslateParamsSchema } from './params.js';

export const StudioInfoSchema = z.object({
  engineVersion: z.string(),
  mode: z.enum(['electron', 'server']),
  note: z.string(),
});
export type StudioInfo = z.infer<typeof StudioInfoSchema>;

export interface ModelEntry {
  id: string;
  kind: 'score' | 'discriminator' | 'classifier';
  name: string;
  bundled: boolean;
  description: string;
  /** a classifier's (or class-conditional discriminator's) class names */
  classes?: string[];
  /** a score model trained only on part of the time range accepts t0 up to validTimeRange[1] */
  validTimeRange?: [number, number];
  /** one item's shape, e.g. [3, 64, 64] */
  dataShape?: number[];
  license?: string;
  /** a discriminator's recommended DG weight (its manifest's `recommendedWeight`) */
  recommendedWeight?: number;
  /** a score model's recommended t0 (its manifest's `recommendedT0`) */
  recommendedT0?: number;
  /** a score model's ladder floor (its manifest's `recommendedSigmaMin`, dg-math §8): the translations' σ min unless set */
  recommendedSigmaMin?: number;
  /** a few lines of the manifest's training record (steps, images seen, held-out error, …) */
  training?: Record<string, string | number>;
  /** a latent, text-conditioned model (a Stable Diffusion-family folder): it takes a prompt, negative prompt and CFG scale */
  latent?: boolean;
  /** a latent model's own suggestions (its folder's dg-studio.json): applied when it is picked */
  latentDefaults?: {
    cfgScale?: number;
    prompt?: string;
    negativePrompt?: string;
    imageSize?: number;
    steps?: number;
    sampler?: (typeof SAMPLER_NAMES)[number];
  };
  /** a discriminator trained on the latents of a Stable Diffusion-family model: that model's folder name (DG for it only) */
  latentModel?: string;
  /** why the manifest cannot be used as it stands (it failed the schema check); absent when it passed */
  problem?: string;
  /** a discriminator's accuracy on its held-out images when it was trained (0.5 = chance) */
  validationAccuracy?: number;
  /** what a user should know before using it: a score model stopped early or failing the never-ship-noise
   * check, a discriminator that barely beats chance */
  warning?: string;
}

export interface SourceRef {
  id: string;
  name: string;
  /** URL of a thumbnail, relative to the back end (see imageUrl) */
  thumb: string;
  /** the image's size in pixels (as shown: EXIF rotation applied) */
  width?: number;
  height?: number;
}

export interface GalleryItem {
  id: number;
  runId: number;
  createdAt: string;
  sourceName: string;
  sourceThumb: string | null;
  image: string | null;
  thumb: string | null;
  error: string | null;
  favourite: boolean;
  note: string;
  tags: string[];
  t0: number;
  dgWeight: number;
  seed: number;
  modelName: string;
  discriminatorName: string | null;
  params: z.infer<typeof TranslateParamsSchema>;
}

/** What a training reports as it goes (the Train tab's curve, rate and held-out error). */
export interface TrainingProgress {
  /** the loss (an exponential moving average) now, and its recent history for the curve */
  loss: number | null;
  losses: number[];
  imagesPerSecond: number | null;
  etaSeconds: number | null;
  /** a score model's held-out denoising error at its evaluation times, once measured */
  heldout: number[] | null;
}

/** Each kind of job's result, as the renderer reads it. */
export interface JobResults {
  translate: { galleryIds: number[]; errors: { file: string; message: string }[] };
  sweep: {
    rows: SweepRow[];
    plot: string;
    cells: { t0: number; w: number; image: string }[];
    /** the sources themselves, untranslated, against the same reference: what doing nothing scores (absent in older results) */
    untranslated?: { swd: number; fd: number; kid: number } | null;
  };
  paths: { rows: { series: string; tau: number; meanLogRatio: number; stdLogRatio: number }[]; plot: string };
  'train-discriminator': { manifest: string; steps: number; accuracy: number; cancelled: boolean; id: string };
  'train-score-model': { manifest: string; steps: number; cancelled: boolean; heldout: number[] | null; id: string };
}
export type JobKind = keyof JobResults;
export const JOB_KINDS = ['translate', 'sweep', 'paths', 'train-discriminator', 'train-score-model'] as const satisfies readonly JobKind[];

interface JobFields {
  id: number;
  label: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  done: number;
  total: number;
  message: string | null;
  /** the current x̂0 as a PNG data URL */
  preview: string | null;
  error: string | null;
  /** a training's curve, rate and held-out error; null for other jobs */
  training: TrainingProgress | null;
  /** why it waits or is paused, behind which job (e.g. "waiting for job #3 (…) to finish"); null when it runs */
  note: string | null;
  /** progress units (steps) per second since the job started, and the seconds left at that rate */
  rate: number | null;
  etaSeconds: number | null;
}
/** A job as the renderer sees it: a union by kind, so its result has that kind's type (null until done). */
export type JobDto = { [K in JobKind]: JobFields & { kind: K; result: JobResults[K] | null } }[JobKind];
/** The job of one kind (e.g. `JobOf<'sweep'>`), for a view that shows only that kind. */
export type JobOf<K extends JobKind> = Extract<JobDto, { kind: K }>;

/** A finished job's result when the job is of kind `kind` (else null): how the renderer reads results. */
export function resultOf<K extends JobKind>(job: JobDto | null | undefined, kind: K): JobResults[K] | null {
  // TypeScript does not narrow a union by a generic kind; the check above the cast is the narrowing
  return job && job.kind === kind && job.state === 'done' ? (job.result as JobResults[K] | null) : null;
}

export interface SweepRow {
  t0: number;
  w: number;
  /** faithfulness to the source: RMS distance, PSNR (dB), SSIM */
  l2Source: number;
  psnrSource: number;
  ssimSource: number;
  /** realism to the reference set */
  swd: number;
  fd: number;
  kid: number;
  /** paired distances to the ground-truth target, when given */
  l2Truth: number | null;
  psnrTruth: number | null;
  ssimTruth: number | null;
  /** the results' roughness (mean |4-neighbour Laplacian|) ÷ the reference set's: 1 is as smooth as the target
   * domain; null when the reference images are perfectly flat (no ratio to take) */
  roughness: number | null;
  /** the guiding discriminator's mean log r on the results at τ = 0.01 (a diagnostic, not a judge) */
  meanLogRatio: number | null;
  images: number;
}

export type StudioEvent = { type: 'job'; job: JobDto } | { type: 'gallery' };

/** What a transport (server mode's HTTP + WebSocket, Electron's IPC) needs of a back end: untyped calls
 * it forwards after its own checks, files by kind and name, and the event stream. */
export interface ServedBackend {
  dispatch(method: string, args: unknown[]): Promise<unknown>;
  resolveFile(kind: string, name: string): string | null | Promise<string | null>;
  /** an annotator link's calls (ANNOTATOR_API only; an unknown or revoked token: status 401, any other method: 403) */
  dispatchAnnotator(token: string, method: string, args: unknown[]): Promise<unknown>;
  /** a blind image of that link (`blind/<name>`), or null */
  resolveAnnotatorFile(token: string, name: string): string | null | Promise<string | null>;
  onEvent(listener: (e: StudioEvent) => void): () => void;
}
