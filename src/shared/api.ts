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
  /** why the manifest cannot be used as it stands (it failed the schema check); absent when it passed */
  problem?: string;
}

export interface SourceRef {
  id: string;
  name: string;
  /** URL of a thumbnail, relative to the back end (see imageUrl) */
  thumb: string;
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

export interface JobDto {
  id: number;
  kind: string;
  label: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  done: number;
  total: number;
  message: string | null;
  /** the current x̂0 as a PNG data URL */
  preview: string | null;
  error: string | null;
  /** kind-specific result: gallery ids for translations, plot URL and rows for sweeps, … */
  result: unknown;
  /** progress units (steps) per second since the job started, and the seconds left at that rate */
  rate: number | null;
  etaSeconds: number | null;
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
  targets: z.array(id).min(2),
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

export const TrainRequestSchema = z.object({
  sources: z.array(id).min(2),
  targets: z.array(id).min(2),
  t0Range: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]),
  steps: z.number().int().min(1).max(1_000_000),
  batchSize: z.number().int().min(2).max(512).default(32),
  name: folderName,
  model: entryId.nullable().default(null),
});

export const SettingsSchema = z.object({
  executionProvider: z.enum(['cpu', 'cuda', 'dml', 'coreml', 'webgpu']).default('cpu'),
  /** ONNX Runtime intra-op threads; 0 = all cores */
  threads: z.number().int().min(0).max(256).default(0),
  /** where translated PNGs are also written (besides the gallery); null = the studio's data folder */
  outputDir: z.string().max(4096).nullable().default(null),
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
          .regex(/^[^/\\]+$/, 'a file name, not a path'),
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

/** Every method: its argument schema (a tuple) — the whole surface, nothing else. */
export const API = {
  getInfo: z.tuple([]),
  listModels: z.tuple([]),
  addSources: z.tuple([AddSourcesSchema]),
  addSamples: z.tuple([]),
  translate: z.tuple([TranslateRequestSchema]),
  cancelJob: z.tuple([z.number().int()]),
  listJobs: z.tuple([]),
  gallerySearch: z.tuple([GalleryQuerySchema]),
  galleryUpdate: z.tuple([z.number().int(), GalleryUpdateSchema]),
  galleryDelete: z.tuple([z.array(z.number().int()).min(1)]),
  galleryExport: z.tuple([z.array(z.number().int()).min(1).max(10_000)]),
  sweep: z.tuple([SweepRequestSchema]),
  diagnosePaths: z.tuple([PathsRequestSchema]),
  trainDiscriminator: z.tuple([TrainRequestSchema]),
  trainScoreModel: z.tuple([TrainScoreModelRequestSchema]),
  getSettings: z.tuple([]),
  setSettings: z.tuple([SettingsSchema]),
  importModel: z.tuple([ImportModelSchema]),
  deleteModel: z.tuple([entryId]),
  proposeManifest: z.tuple([ProposeManifestSchema]),
  listStudies: z.tuple([]),
  createStudy: z.tuple([CreateStudySchema]),
  nextStudyItem: z.tuple([z.number().int(), annotator]),
  judge: z.tuple([z.number().int(), annotator, z.number().int(), z.enum(['left', 'right', 'tie'])]),
  undoJudgement: z.tuple([z.number().int(), annotator]),
  studySummary: z.tuple([z.number().int()]),
  studyExport: z.tuple([z.number().int(), z.enum(['csv', 'json']).default('csv')]),
} as const;
export type ApiMethod = keyof typeof API;

export interface StudioApi {
  getInfo(): Promise<StudioInfo>;
  listModels(): Promise<ModelEntry[]>;
  addSources(req: z.input<typeof AddSourcesSchema>): Promise<{ sources: SourceRef[]; errors: { name: string; message: string }[] }>;
  /** the bundled sample images (resources/samples), added like picked files: a first run needs no files */
  addSamples(): Promise<{ sources: SourceRef[]; errors: { name: string; message: string }[] }>;
  translate(req: TranslateRequest): Promise<{ jobId: number }>;
  cancelJob(id: number): Promise<boolean>;
  listJobs(): Promise<JobDto[]>;
  gallerySearch(q: z.input<typeof GalleryQuerySchema>): Promise<GalleryItem[]>;
  galleryUpdate(id: number, u: z.input<typeof GalleryUpdateSchema>): Promise<GalleryItem>;
  galleryDelete(ids: number[]): Promise<number>;
  /** copy results (PNG + sidecar, named by source) into a new folder under the output folder; returns where */
  galleryExport(ids: number[]): Promise<{ folder: string; files: number }>;
  sweep(req: z.input<typeof SweepRequestSchema>): Promise<{ jobId: number }>;
  diagnosePaths(req: z.input<typeof PathsRequestSchema>): Promise<{ jobId: number }>;
  trainDiscriminator(req: z.input<typeof TrainRequestSchema>): Promise<{ jobId: number }>;
  trainScoreModel(req: z.input<typeof TrainScoreModelRequestSchema>): Promise<{ jobId: number }>;
  getSettings(): Promise<Settings>;
  setSettings(s: z.input<typeof SettingsSchema>): Promise<Settings>;
  importModel(req: z.input<typeof ImportModelSchema>): Promise<ModelEntry>;
  /** remove an imported or trained model (its folder in the data folder); bundled models cannot be deleted */
  deleteModel(id: string): Promise<boolean>;
  /** what `dg-studio inspect` says of a bare ONNX file: a checked manifest proposal to confirm or edit */
  proposeManifest(req: z.input<typeof ProposeManifestSchema>): Promise<ManifestProposal>;
  listStudies(): Promise<{ id: number; name: string; question: string; items: number }[]>;
  createStudy(req: z.input<typeof CreateStudySchema>): Promise<number>;
  nextStudyItem(studyId: number, annotator: string): Promise<StudyItemDto | null>;
  judge(studyId: number, annotator: string, itemId: number, choice: 'left' | 'right' | 'tie'): Promise<void>;
  undoJudgement(studyId: number, annotator: string): Promise<boolean>;
  studySummary(studyId: number): Promise<unknown>;
  /** one row per judgement, as CSV text, or JSON {rows, summary} */
  studyExport(studyId: number, format?: 'csv' | 'json'): Promise<string>;
}

/** What the preload exposes: the API plus an event subscription and the image URL scheme. */
export interface StudioBridge extends StudioApi {
  onEvent(listener: (e: StudioEvent) => void): () => void;
}

declare global {
  interface Window {
    dgStudio?: StudioBridge;
  }
}
