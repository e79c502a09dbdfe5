/**
 * The one typed contract between the studio's back end (Electron main or server mode) and
 * its renderer. Every request has a schema; the back end validates before acting. The
 * renderer never sends file paths: images travel as bytes into the back end's inbox.
 */
import { z } from 'zod';

import { type StudioInfo, type ModelEntry, type SourceRef, type GalleryItem, type JobDto, type StudioEvent } from './api-results.js';
import {
  AddSourcesSchema,
  TranslateRequestSchema,
  GalleryQuerySchema,
  GalleryUpdateSchema,
  SweepRequestSchema,
  PathsRequestSchema,
  TrainScoreModelRequestSchema,
  TrainRequestSchema,
  SettingsSchema,
  EntryIdSchema,
  AnnotatorNameSchema,
  type Settings,
  ImportModelSchema,
  ProposeManifestSchema,
  type ManifestProposal,
  CreateStudySchema,
  type InterruptedRun,
  type StudyItemDto,
  type AnnotatorLinkDto,
  type AnnotatorStudyDto,
} from './api-requests.js';
export * from './api-results.js';
export * from './api-requests.js';

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
  deleteModel: method<boolean>()(z.tuple([EntryIdSchema])),
  /** what `dg-studio inspect` says of a bare ONNX file: a checked manifest proposal to confirm or edit */
  proposeManifest: method<ManifestProposal>()(z.tuple([ProposeManifestSchema])),
  listStudies: method<{ id: number; name: string; question: string; items: number }[]>()(z.tuple([])),
  createStudy: method<number>()(z.tuple([CreateStudySchema])),
  nextStudyItem: method<StudyItemDto | null>()(z.tuple([rowId, AnnotatorNameSchema])),
  judge: method<void>()(z.tuple([rowId, AnnotatorNameSchema, rowId, z.enum(['left', 'right', 'tie'])])),
  undoJudgement: method<boolean>()(z.tuple([rowId, AnnotatorNameSchema])),
  studySummary: method<unknown>()(z.tuple([rowId])),
  /** a link that lets one annotator judge one study and nothing else; its token is in the answer once, never again */
  createAnnotatorLink: method<{ id: number; token: string }>()(z.tuple([rowId, AnnotatorNameSchema])),
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
