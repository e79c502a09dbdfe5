/**
 * The studio's back end: the StudioApi contract implemented over the services — a thin dispatcher.
 * Electron's IPC handlers and the server mode both call `dispatch`, which validates every request
 * against the shared schema first. The models registry (model-registry.ts), the inbox (inbox.ts)
 * and the job launchers (launchers.ts) are their own files. Knows no Electron and no HTTP.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  API,
  type ApiParsedArgs,
  SettingsSchema,
  type ApiMethod,
  type GalleryItem,
  type JobDto,
  type JobKind,
  type JobResults,
  type ManifestProposal,
  type ModelEntry,
  type Settings,
  type StudioApi,
  type StudioEvent,
} from '../../shared/api.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { writeFileAtomic } from '../engine/io/image-io.js';
import { outputFolderProblem } from '../services/folders.js';
import { Gallery, type OutputRow } from '../services/gallery.js';
import { jobRate, JobQueue, type JobInfo } from '../services/jobs.js';
import { bundledDefaults, dataDir, defaultGalleryDir } from '../services/resources.js';
import type { Studies } from '../services/studies.js';
import type { AnnotatorLinks } from '../services/annotator-links.js';
import { Inbox } from './inbox.js';
import { StudyRoom } from './study-room.js';
import { PayloadError } from '../../shared/errors.js';
import {
  launchDiagnosePaths,
  launchResume,
  launchSweep,
  launchTrainDiscriminator,
  launchTrainScoreModel,
  launchTranslate,
  type LaunchContext,
} from './launchers.js';
import { ModelRegistry, type SessionChoice } from './model-registry.js';

export interface BackendOptions {
  mode: 'electron' | 'server';
  dataDir?: string;
  /** more folders an output folder may lie in (serve --allow-root) */
  allowedRoots?: string[];
}

/**
 * Error text for a page that may not sit at the machine's keyboard (server mode): the studio's data folder and
 * the user's home folder are named, not spelled out, so an error does not tell a page where anyone keeps files.
 */
export function withoutServerPaths(message: string, dataFolder: string, home = homedir()): string {
  const named = message.replaceAll(resolve(dataFolder), '<data folder>');
  return home.length > 1 ? named.replaceAll(resolve(home), '~') : named;
}

export class StudioBackend implements StudioApi {
  readonly jobs = new JobQueue();
  private readonly listeners = new Set<(e: StudioEvent) => void>();
  private readonly home: string;
  private readonly previews = new Map<number, string>();
  private settings: Settings = SettingsSchema.parse({});
  private readonly inbox: Inbox;
  private readonly models: ModelRegistry;
  private readonly room: StudyRoom;

  private constructor(
    readonly gallery: Gallery,
    private readonly opts: BackendOptions,
  ) {
    this.home = opts.dataDir ?? dataDir();
    this.inbox = new Inbox(this.home);
    this.models = new ModelRegistry(this.home, () => this.settings.modelFolders);
    this.room = new StudyRoom(gallery, this.inbox, this.home, (kind, name) => this.resolveFile(kind, name));
    this.jobs.on('update', (j) => this.emit({ type: 'job', job: this.dto(j) }));
  }

  static async create(opts: BackendOptions): Promise<StudioBackend> {
    const home = opts.dataDir ?? dataDir();
    await mkdir(join(home, 'inbox', 'thumbs'), { recursive: true });
    await mkdir(join(home, 'discriminators'), { recursive: true });
    await mkdir(join(home, 'models'), { recursive: true });
    const b = new StudioBackend(await Gallery.open(opts.dataDir ? join(home, 'gallery') : defaultGalleryDir()), opts);
    try {
      b.settings = SettingsSchema.parse(JSON.parse(await readFile(join(home, 'settings.json'), 'utf8')));
    } catch {
      // no settings yet (or unreadable ones): defaults
    }
    return b;
  }

  onEvent(listener: (e: StudioEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: StudioEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Validate and call: the single entry point for IPC and HTTP. */
  async dispatch(method: string, args: unknown[]): Promise<unknown> {
    if (!Object.hasOwn(API, method)) throw new Error(`unknown method "${method}"`);
    const parsed = API[method as ApiMethod].args.safeParse(args);
    if (!parsed.success) throw new PayloadError(method, parsed.error, args);
    const fn = this[method as ApiMethod] as (...a: unknown[]) => Promise<unknown>;
    return this.served(() => fn.apply(this, parsed.data as unknown[]));
  }

  /** In server mode, an error's text names the data and home folders instead of spelling them out. */
  private async served<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (this.opts.mode === 'server' && e instanceof Error) e.message = withoutServerPaths(e.message, this.home);
      throw e;
    }
  }

  /** Files the renderer may show: gallery objects/thumbs and inbox thumbs, by content hash. */
  resolveFile(kind: string, name: string): string | null {
    if (!/^[0-9a-f]{16,64}$/.test(name)) return null;
    if (kind === 'image') return this.gallery.objectPath(name);
    if (kind === 'thumb') return this.gallery.thumbPath(name);
    if (kind === 'source') return this.inbox.thumbPath(name);
    if (kind === 'plot') return join(this.home, 'plots', `${name}.png`);
    if (kind === 'export') return join(this.home, 'exports', `${name}.zip`);
    return null;
  }

  private dto(j: JobInfo): JobDto {
    if (j.progress?.preview) this.previews.set(j.id, `data:image/png;base64,${Buffer.from(j.progress.preview).toString('base64')}`);
    // every job was queued by submitJob (launchers.ts), which ties its kind to its result's type
    return {
      id: j.id,
      kind: j.kind as JobKind,
      label: j.label,
      state: j.state,
      done: j.progress?.done ?? 0,
      total: j.progress?.total ?? 0,
      message: j.progress?.message ?? null,
      preview: this.previews.get(j.id) ?? null,
      error: j.error,
      training: j.progress?.training ?? null,
      note: j.note,
      result: (j.result ?? null) as JobResults[JobKind] | null,
      ...jobRate(j),
    } as JobDto;
  }

  private item(r: OutputRow): GalleryItem {
    const src = this.inbox.sourceOf(r.sourcePath);
    return {
      id: r.id,
      runId: r.runId,
      createdAt: r.createdAt,
      sourceName: r.sourceName ?? src.name,
      sourceThumb: src.thumb,
      image: r.sha256 ? `image/${r.sha256}` : null,
      thumb: r.sha256 ? `thumb/${r.sha256}` : null,
      error: r.error,
      favourite: r.favourite,
      note: r.note,
      tags: r.tags,
      t0: r.t0,
      dgWeight: r.dgWeight,
      seed: r.seed,
      modelName: r.modelName,
      discriminatorName: r.discriminatorName,
      params: r.params,
    };
  }

  private get session(): SessionChoice {
    return { executionProvider: this.settings.executionProvider, threads: this.settings.threads || undefined };
  }

  private launchContext(): LaunchContext {
    return {
      jobs: this.jobs,
      gallery: this.gallery,
      home: this.home,
      inbox: this.inbox,
      models: this.models,
      session: this.session,
      outputDir: this.settings.outputDir ?? join(this.home, 'outputs'),
      queue: this.settings.queue,
      emit: (e) => this.emit(e),
    };
  }

  // ---- the contract ----

  async getInfo() {
    return { engineVersion: ENGINE_VERSION, mode: this.opts.mode, note: bundledDefaults().note };
  }

  async listModels(): Promise<ModelEntry[]> {
    return this.models.list();
  }

  async addSamples() {
    return this.inbox.addSamples();
  }

  /** Store dropped or picked images in the inbox (content-addressed), with thumbnails. */
  async addSources(req: { files: { name: string; data: Uint8Array }[] }) {
    return this.inbox.add(req.files);
  }

  async translate(req: ApiParsedArgs<'translate'>[0]) {
    return launchTranslate(this.launchContext(), req);
  }

  async cancelJob(id: number) {
    return this.jobs.cancel(id);
  }

  async listJobs() {
    return this.jobs.list().map((j) => this.dto(j));
  }

  async gallerySearch(q: ApiParsedArgs<'gallerySearch'>[0]) {
    return this.gallery.search(q).map((r) => this.item(r));
  }

  async galleryUpdate(id: number, u: ApiParsedArgs<'galleryUpdate'>[1]) {
    if (!this.gallery.get(id)) throw new Error(`the gallery has no output ${id}`);
    if (u.favourite !== undefined) this.gallery.setFavourite(id, u.favourite);
    if (u.note !== undefined) this.gallery.setNote(id, u.note);
    if (u.addTag) this.gallery.addTag(id, u.addTag);
    if (u.removeTag) this.gallery.removeTag(id, u.removeTag);
    this.emit({ type: 'gallery' });
    return this.item(this.gallery.get(id)!);
  }

  /** Results as one ZIP in the data folder's exports/ (the newest 5 kept), served as `export/<name>`. */
  async galleryExportZip(ids: number[]) {
    const dir = join(this.home, 'exports');
    const name = randomBytes(16).toString('hex');
    const files = await this.gallery.exportZip(ids, join(dir, `${name}.zip`));
    const old = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.zip'));
    const dated = await Promise.all(old.map(async (f) => ({ f, t: (await stat(join(dir, f))).mtimeMs })));
    for (const { f } of dated.sort((a, b) => b.t - a.t).slice(5)) await rm(join(dir, f), { force: true });
    return { file: `export/${name}`, files };
  }

  /** Export results into a fresh folder under the output folder (the settings' one, or the data folder's). */
  async galleryExport(ids: number[]) {
    const base = this.settings.outputDir ?? join(this.home, 'outputs');
    const folder = join(base, `export-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    const written = await this.gallery.export(ids, folder);
    return { folder, files: written.length };
  }

  async galleryDelete(ids: number[]) {
    const n = await this.gallery.delete(ids);
    this.emit({ type: 'gallery' });
    return n;
  }

  async sweep(req: ApiParsedArgs<'sweep'>[0]) {
    return launchSweep(this.launchContext(), req);
  }

  async diagnosePaths(req: ApiParsedArgs<'diagnosePaths'>[0]) {
    return launchDiagnosePaths(this.launchContext(), req);
  }

  async trainDiscriminator(req: ApiParsedArgs<'trainDiscriminator'>[0]) {
    return launchTrainDiscriminator(this.launchContext(), req);
  }

  /** Train a target score model from target images (the app's own trainer); the model joins the list. */
  async trainScoreModel(req: ApiParsedArgs<'trainScoreModel'>[0]) {
    return launchTrainScoreModel(this.launchContext(), req);
  }

  /** Where an output folder may lie: the data folder, the user's home, and roots given at start. */
  allowedRoots(): string[] {
    return [this.home, homedir(), ...(this.opts.allowedRoots ?? [])];
  }

  async getSettings(): Promise<Settings> {
    return this.settings;
  }

  async setSettings(next: Settings): Promise<Settings> {
    if (next.outputDir !== null) {
      const problem = outputFolderProblem(next.outputDir, this.allowedRoots());
      if (problem) throw new Error(problem);
      try {
        await mkdir(next.outputDir, { recursive: true });
      } catch (e) {
        throw new Error(`cannot use "${next.outputDir}" as the output folder: ${(e as Error).message}`, { cause: e });
      }
    }
    this.settings = next;
    await writeFileAtomic(join(this.home, 'settings.json'), JSON.stringify(next, null, 2));
    return next;
  }

  async deleteModel(id: string): Promise<boolean> {
    return this.models.delete(id);
  }

  async importModel(req: ApiParsedArgs<'importModel'>[0]): Promise<ModelEntry> {
    return this.models.import(req, this.session);
  }

  async proposeManifest(req: ApiParsedArgs<'proposeManifest'>[0]): Promise<ManifestProposal> {
    return this.models.propose(req, this.session);
  }

  // ---- annotation studies ----

  private get studies(): Studies {
    return this.room.studies;
  }

  private get links(): AnnotatorLinks {
    return this.room.links;
  }

  async listStudies() {
    return this.studies.list();
  }

  async createStudy(req: ApiParsedArgs<'createStudy'>[0]) {
    return this.studies.create(req);
  }

  /** The next pair for an annotator, as image URLs (the blank obvious-check image included). */
  async nextStudyItem(studyId: number, annotator: string) {
    return this.room.studyItem(studyId, annotator, async (kind, name) => `${kind}/${name}`);
  }

  async createAnnotatorLink(studyId: number, annotator: string) {
    return this.links.create(studyId, annotator);
  }

  async listAnnotatorLinks(studyId: number) {
    return this.links.list(studyId);
  }

  async revokeAnnotatorLink(linkId: number) {
    return this.links.revoke(linkId);
  }

  /** An annotator link's call: only ANNOTATOR_API, bound to the link's study and annotator (docs/security.md). */
  async dispatchAnnotator(token: string, method: string, args: unknown[]): Promise<unknown> {
    return this.served(() => this.room.annotatorCall(token, method, args));
  }

  /** A blind image of the link whose token this is (`blind/<name>`), or null. */
  resolveAnnotatorFile(token: string, name: string): string | null {
    return this.room.resolveAnnotatorFile(token, name);
  }

  async judge(studyId: number, annotator: string, itemId: number, choice: 'left' | 'right' | 'tie') {
    this.studies.judge(studyId, annotator, itemId, choice);
  }

  async undoJudgement(studyId: number, annotator: string) {
    return this.studies.undo(studyId, annotator);
  }

  async listInterruptedRuns() {
    return this.gallery.interruptedRuns();
  }

  async resumeRun(runId: number) {
    return launchResume(this.launchContext(), runId);
  }

  async studySummary(studyId: number) {
    return this.studies.summary(studyId);
  }

  async studyExport(studyId: number, format: 'csv' | 'json' = 'csv') {
    if (format === 'csv') return this.studies.csv(studyId);
    return JSON.stringify({ rows: this.studies.rows(studyId), summary: await this.studies.summary(studyId) }, null, 2);
  }

  async close(): Promise<void> {
    for (const j of this.jobs.list()) this.jobs.cancel(j.id);
    this.gallery.db.close();
  }
}
