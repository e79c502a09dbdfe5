/**
 * The one typed contract between the studio's back end (Electron main or server mode) and
 * its renderer. Every request has a schema; the back end validates before acting. The
 * renderer never sends file paths: images travel as bytes into the back end's inbox.
 */
import { z } from 'zod';
import { TranslateParamsSchema } from './params.js';

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
  /** a few lines of the manifest's training record (steps, images seen, held-out error, …) */
  training?: Record<string, string | number>;
  /** a latent, text-conditioned model (a Stable Diffusion-family folder): it takes a prompt, negative prompt and CFG scale */
  latent?: boolean;
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
  sweep: { rows: SweepRow[]; plot: string; cells: { t0: number; w: number; image: string }[] };
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

const id = z.string().regex(/^[0-9a-f]{16,64}$/, 'not a source id');
const entryId = z.string().min(1).max(200);

export const AddSourcesSchema = z.object({
  files: z
    .array(z.object({ name: z.string().min(1).max(255), data: z.instanceof(Uint8Array) }))
    .min(1)
    .max(500),
});

export const TranslateRequestSchema = z.object({
  sources: z.array(id).min(1).max(10_000),
  params: TranslateParamsSchema,
  model: entryId.nullable().default(null),
  discriminator: entryId.nullable().default(null),
  /** classifier guidance (params.cgWeight > 0, toward params.classLabel): an imported classifier */
  classifier: entryId.nullable().default(null),
});
export type TranslateRequest = z.input<typeof TranslateRequestSchema>;

export const GalleryQuerySchema = z.object({
  model: z.string().max(200).optional(),
  t0Min: z.number().optional(),
  t0Max: z.number().optional(),
  dgWeight: z.number().optional(),
  tag: z.string().max(100).optional(),
  text: z.string().max(200).optional(),
  favourite: z.boolean().optional(),
  includeErrors: z.boolean().optional(),
  limit: z.number().int().min(1).max(500).optional(),
  after: z.object({ createdAt: z.string(), id: z.number().int() }).optional(),
});

export const GalleryUpdateSchema = z.object({
  favourite: z.boolean().optional(),
  note: z.string().max(10_000).optional(),
  addTag: z.string().min(1).max(100).optional(),
  removeTag: z.string().min(1).max(100).optional(),
});

export const SweepRequestSchema = z.object({
  sources: z.array(id).min(1).max(1000),
  reference: z.array(id).min(2).max(5000),
  t0s: z.array(z.number().gt(0).max(1)).min(1).max(12),
  weights: z.array(z.number().min(0).max(100)).min(1).max(12),
  params: TranslateParamsSchema,
  model: entryId.nullable().default(null),
  discriminator: entryId.nullable().default(null),
});

export const PathsRequestSchema = z.object({
  sources: z.array(id).min(1).max(1000),
  reference: z.array(id).min(1).max(5000),
  t0: z.number().gt(0).max(1),
  weight: z.number().min(0).max(100),
  params: TranslateParamsSchema,
  model: entryId.nullable().default(null),
  discriminator: entryId.nullable().default(null),
});

/** A name that becomes a folder in the data folder: no separators, no ".", "..", or hidden names. */
const folderName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\w .-]+$/, 'letters, digits, spaces, dots and dashes only')
  .refine((n) => !n.startsWith('.') && n.trim() === n, 'a name may not start with a dot or a space, or end with a space');

/** Train a target score model (ε U-Net) from target-domain images, in the app's trainer. */
export const TrainScoreModelRequestSchema = z.object({
  targets: z.array(id).min(2).max(100_000),
  name: folderName,
  steps: z.number().int().min(1).max(10_000_000),
  batchSize: z.number().int().min(1).max(512).default(32),
  channels: z.number().int().min(4).max(256).default(32),
  patch: z.union([z.literal(1), z.literal(2)]).default(1),
  tMax: z.number().gt(0).max(1).default(1),
  /** image side; targets of other sizes are resized and centre-cropped */
  resolution: z.union([z.literal(32), z.literal(64), z.literal(128)]).default(64),
  /** source images whose SDEdit translations the preview shows (up to two are used) */
  previewSources: z.array(id).max(8).default([]),
});

export const TrainRequestSchema = z
  .object({
    sources: z.array(id).min(2).max(100_000),
    targets: z.array(id).min(2).max(100_000),
    t0Range: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]),
    steps: z.number().int().min(1).max(1_000_000),
    batchSize: z.number().int().min(2).max(512).default(32),
    name: folderName,
    model: entryId.nullable().default(null),
  })
  .refine((r) => r.t0Range[0] <= r.t0Range[1], {
    message: 't0 range must be low, high with low ≤ high',
    path: ['t0Range'],
  });

export const SettingsSchema = z.object({
  executionProvider: z.enum(['cpu', 'cuda', 'dml', 'coreml', 'webgpu']).default('cpu'),
  /** ONNX Runtime intra-op threads; 0 = all cores */
  threads: z.number().int().min(0).max(256).default(0),
  /** where translated PNGs are also written (besides the gallery); null = the studio's data folder */
  outputDir: z.string().max(4096).nullable().default(null),
  /** more folders holding models: Stable Diffusion-family folders in diffusers' ONNX layout (each, or one level down) */
  modelFolders: z
    .array(
      z
        .string()
        .max(4096)
        .regex(/^(\/|[A-Za-z]:[\\/])/, 'a model folder must be an absolute path'),
    )
    .max(32)
    .default([]),
  /** send translations to the workers on this Redis (docs/scale-out.md); null = translate here */
  queue: z
    .string()
    .max(2048)
    .regex(/^rediss?:\/\/\S+$/, 'a Redis URL: redis://host:6379 (rediss:// for TLS)')
    .nullable()
    .default(null),
});
export type Settings = z.infer<typeof SettingsSchema>;

export const ImportModelSchema = z.object({
  kind: z.enum(['score', 'discriminator', 'classifier']),
  files: z
    .array(
      z.object({
        name: z
          .string()
          .min(1)
          .max(255)
          .regex(/^[^/\\]+$/, 'a file name, not a path')
          .regex(/^[^.]/, 'a file name that does not start with a dot'),
        data: z.instanceof(Uint8Array),
      }),
    )
    .min(1)
    .max(8),
});

/** A bare ONNX file to propose a manifest for (dg-studio inspect, in the studio). */
export const ProposeManifestSchema = z.object({
  kind: z.enum(['score', 'discriminator', 'classifier']).optional(),
  file: z.object({
    name: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[^/\\]+\.onnx$/i, 'an .onnx file name, not a path'),
    data: z.instanceof(Uint8Array),
  }),
});

export interface ManifestProposal {
  kind: 'score' | 'discriminator' | 'classifier';
  kindWhy: string;
  /** the proposed manifest, as JSON text for the user to edit */
  manifest: string;
  guesses: string[];
  inputs: { name: string; dtype: string; shape: string[] | null; role: string }[];
  outputs: { name: string; dtype: string; shape: string[] | null; role: string }[];
  /** null: it loaded and ran on two items; else why not */
  problem: string | null;
  warnings: string[];
}

const Setting = z.object({ t0: z.number(), dgWeight: z.number() });
export const CreateStudySchema = z.object({
  name: z.string().min(1).max(200),
  question: z.enum(['realism', 'faithfulness']),
  /** two settings (A/B) or a grid; every pair of settings is compared on every source */
  settings: z.array(Setting).min(2).max(16),
  seed: z.number().int().min(0).default(0),
});

export interface InterruptedRun {
  id: number;
  createdAt: string;
  /** sources in the run, and how many have a result */
  total: number;
  done: number;
  t0: number;
  dgWeight: number;
  modelName: string;
}

export interface StudyItemDto {
  itemId: number;
  position: number;
  total: number;
  done: number;
  source: string | null;
  left: string;
  right: string;
}

const annotator = z.string().min(1).max(100);

export interface AnnotatorLinkDto {
  id: number;
  studyId: number;
  annotator: string;
  createdAt: string;
  revoked: boolean;
  /** judgements this annotator has made in the study (undone ones not counted) */
  judged: number;
}

/** What an annotator's page knows of its study: the question, never the settings. */
export interface AnnotatorStudyDto {
  name: string;
  question: 'realism' | 'faithfulness';
  annotator: string;
}

/**
 * One table, the whole surface: each method's argument schema (a tuple, validated by the back end before
 * it acts) and its result type (carried as a type: the back end is trusted, so results are not
 * re-validated). The method list, the IPC channels, the preload bridge, the HTTP client and the
 * back end's `StudioApi` are all derived from it (test/app/contract.test.ts checks that they agree).
 */
const method =
  <Result>() =>
  <Args extends z.ZodType<unknown[]>>(args: Args) => ({ args, result: undefined as unknown as Result });
type Inbox = { sources: SourceRef[]; errors: { name: string; message: string }[] };
/** a gallery output, job or study id */
const rowId = z.number().int();

export const API = {
  getInfo: method<StudioInfo>()(z.tuple([])),
  listModels: method<ModelEntry[]>()(z.tuple([])),
  addSources: method<Inbox>()(z.tuple([AddSourcesSchema])),
  /** the bundled sample images (resources/samples), added like picked files: a first run needs no files */
  addSamples: method<Inbox>()(z.tuple([])),
  translate: method<{ jobId: number }>()(z.tuple([TranslateRequestSchema])),
  cancelJob: method<boolean>()(z.tuple([rowId])),
  listJobs: method<JobDto[]>()(z.tuple([])),
  gallerySearch: method<GalleryItem[]>()(z.tuple([GalleryQuerySchema])),
  galleryUpdate: method<GalleryItem>()(z.tuple([rowId, GalleryUpdateSchema])),
  galleryDelete: method<number>()(z.tuple([z.array(rowId).min(1).max(10_000)])),
  /** copy results (PNG + sidecar, named by source) into a new folder under the output folder; returns where */
  galleryExport: method<{ folder: string; files: number }>()(z.tuple([z.array(rowId).min(1).max(10_000)])),
  /** the same as one ZIP to download (a browser on another machine cannot open the server's folders): its file reference */
  galleryExportZip: method<{ file: string; files: number }>()(z.tuple([z.array(rowId).min(1).max(10_000)])),
  sweep: method<{ jobId: number }>()(z.tuple([SweepRequestSchema])),
  diagnosePaths: method<{ jobId: number }>()(z.tuple([PathsRequestSchema])),
  trainDiscriminator: method<{ jobId: number }>()(z.tuple([TrainRequestSchema])),
  trainScoreModel: method<{ jobId: number }>()(z.tuple([TrainScoreModelRequestSchema])),
  getSettings: method<Settings>()(z.tuple([])),
  setSettings: method<Settings>()(z.tuple([SettingsSchema])),
  importModel: method<ModelEntry>()(z.tuple([ImportModelSchema])),
  /** remove an imported or trained model (its folder in the data folder); bundled models cannot be deleted */
  deleteModel: method<boolean>()(z.tuple([entryId])),
  /** what `dg-studio inspect` says of a bare ONNX file: a checked manifest proposal to confirm or edit */
  proposeManifest: method<ManifestProposal>()(z.tuple([ProposeManifestSchema])),
  listStudies: method<{ id: number; name: string; question: string; items: number }[]>()(z.tuple([])),
  createStudy: method<number>()(z.tuple([CreateStudySchema])),
  nextStudyItem: method<StudyItemDto | null>()(z.tuple([rowId, annotator])),
  judge: method<void>()(z.tuple([rowId, annotator, rowId, z.enum(['left', 'right', 'tie'])])),
  undoJudgement: method<boolean>()(z.tuple([rowId, annotator])),
  studySummary: method<unknown>()(z.tuple([rowId])),
  /** a link that lets one annotator judge one study and nothing else; its token is in the answer once, never again */
  createAnnotatorLink: method<{ id: number; token: string }>()(z.tuple([rowId, annotator])),
  listAnnotatorLinks: method<AnnotatorLinkDto[]>()(z.tuple([rowId])),
  revokeAnnotatorLink: method<boolean>()(z.tuple([rowId])),
  /** translation runs a crash or a stopped server left unfinished (the studio offers to resume them) */
  listInterruptedRuns: method<InterruptedRun[]>()(z.tuple([])),
  /** finish an interrupted run: the sources without a result, with the run's own parameters and models */
  resumeRun: method<{ jobId: number }>()(z.tuple([rowId])),
  /** one row per judgement, as CSV text, or JSON {rows, summary} */
  studyExport: method<string>()(z.tuple([rowId, z.enum(['csv', 'json']).optional()])),
} as const;
export type ApiMethod = keyof typeof API;
/** Every method name, in the table's order. */
export const METHODS = Object.keys(API) as ApiMethod[];
/** What a caller passes (defaults may be left out) and what the back end's method receives (defaults filled). */
export type ApiArgs<M extends ApiMethod> = z.input<(typeof API)[M]['args']>;
export type ApiParsedArgs<M extends ApiMethod> = z.output<(typeof API)[M]['args']>;
export type ApiResult<M extends ApiMethod> = (typeof API)[M]['result'];
// method syntax keeps parameters bivariant, so an implementation may take the parsed (defaults-filled) form
type Method<Args extends unknown[], Result> = { call(...args: Args): Promise<Result> }['call'];
/** The contract as functions: what the renderer calls and what the back end implements. */
export type StudioApi = { [M in ApiMethod]: Method<ApiArgs<M>, ApiResult<M>> };

/** The API over any transport that can carry a method name and its arguments (IPC, HTTP): the one place
 * where the table becomes functions. */
export function apiOverTransport(invoke: (method: ApiMethod, args: unknown[]) => Promise<unknown>): StudioApi {
  return functionsOf(METHODS, invoke) as StudioApi;
}

function functionsOf<M extends string>(methods: readonly M[], invoke: (method: M, args: unknown[]) => Promise<unknown>) {
  const api: Partial<Record<M, (...args: unknown[]) => Promise<unknown>>> = {};
  for (const m of methods) api[m] = (...args: unknown[]) => invoke(m, args);
  return api;
}

/**
 * The whole surface an annotator link reaches (server mode, `X-DG-Annotator` header): its study's question, the
 * next pair, a judgement, an undo — each bound to the link's study and annotator by the back end, never named by
 * the caller. Nothing else in API is callable with an annotator token.
 */
export const ANNOTATOR_API = {
  annotatorStudy: method<AnnotatorStudyDto>()(z.tuple([])),
  annotatorNext: method<StudyItemDto | null>()(z.tuple([])),
  annotatorJudge: method<void>()(z.tuple([rowId, z.enum(['left', 'right', 'tie'])])),
  annotatorUndo: method<boolean>()(z.tuple([])),
} as const;
export type AnnotatorMethod = keyof typeof ANNOTATOR_API;
export type AnnotatorApi = {
  [M in AnnotatorMethod]: Method<z.input<(typeof ANNOTATOR_API)[M]['args']>, (typeof ANNOTATOR_API)[M]['result']>;
};
export const ANNOTATOR_TOKEN_HEADER = 'x-dg-annotator';

/** The annotator surface over a transport (the annotator page's HTTP client). */
export function annotatorApiOverTransport(invoke: (method: AnnotatorMethod, args: unknown[]) => Promise<unknown>): AnnotatorApi {
  return functionsOf(Object.keys(ANNOTATOR_API) as AnnotatorMethod[], invoke) as AnnotatorApi;
}

/** IPC channel names (Electron). */
export const channelOf = (method: ApiMethod) => `dg:${method}`;
export const EVENT_CHANNEL = 'dg:event';

/** What the preload exposes: the API plus an event subscription and the image URL scheme. */
export interface StudioBridge extends StudioApi {
  onEvent(listener: (e: StudioEvent) => void): () => void;
}

declare global {
  interface Window {
    dgStudio?: StudioBridge;
  }
}
