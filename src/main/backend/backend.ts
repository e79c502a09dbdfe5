/**
 * The studio's back end: the StudioApi contract implemented over the services. Electron's
 * IPC handlers and the server mode both call `dispatch`, which validates every request
 * against the shared schema first. Knows no Electron and no HTTP.
 */
import { createHash, randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import sharp, { type Metadata } from 'sharp';
import type { z } from 'zod';
import {
  API,
  SettingsSchema,
  type ApiMethod,
  type GalleryItem,
  type JobDto,
  type ManifestProposal,
  type ModelEntry,
  type Settings,
  type SourceRef,
  type StudioApi,
  type StudioEvent,
} from '../../shared/api.js';
import { readJsonFile } from '../engine/models/score-model.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { describeIssues } from '../../shared/errors.js';
import { encodePng, MAX_INPUT_PIXELS, sideBySide, writeFileAtomic } from '../engine/io/image-io.js';
import { trainDiscriminatorOnThread, trainScoreModelOnThread } from '../services/training-thread.js';
import { Gallery, type OutputRow } from '../services/gallery.js';
import { jobRate, JobQueue, type JobInfo } from '../services/jobs.js';
import { bundledDefaults, dataDir, defaultGalleryDir, resourcesDir } from '../services/resources.js';
import { diagnosePaths } from '../services/path-diagnostics.js';
import { obviousImage, Studies } from '../services/studies.js';
import { runSweep } from '../services/sweep.js';
import { translateFiles } from '../services/translate-files.js';
import { checkManifest, inspectOnnxFile } from '../services/inspect-model.js';
import { outputFolderProblem } from '../services/folders.js';

/** A manifest's training record, cut to the scalar facts a model card shows. */
function trainingSummary(t: unknown): Record<string, string | number> | null {
  if (typeof t !== 'object' || t === null) return null;
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(t)) if (typeof v === 'number' || (typeof v === 'string' && v.length < 80)) out[k] = v;
  return Object.keys(out).length ? out : null;
}

export class PayloadError extends Error {
  constructor(method: string, error: z.ZodError, input: unknown) {
    // in words for the person (shared/errors.ts); the method name only as a trailing hint for developers
    super(`${describeIssues(error, input)} (refused: invalid request to ${method})`);
    this.name = 'PayloadError';
  }
}

const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;
/** file name (a hex id, as resolveFile wants) of the flat grey image of obvious attention checks */
const GREY_IMAGE = '0'.repeat(32);

export interface BackendOptions {
  mode: 'electron' | 'server';
  dataDir?: string;
  /** more folders an output folder may lie in (serve --allow-root) */
  allowedRoots?: string[];
}

export class StudioBackend implements StudioApi {
  readonly jobs = new JobQueue();
  private readonly listeners = new Set<(e: StudioEvent) => void>();
  private readonly home: string;
  private readonly previews = new Map<number, string>();
  private settings: Settings = SettingsSchema.parse({});

  private constructor(
    readonly gallery: Gallery,
    private readonly opts: BackendOptions,
  ) {
    this.home = opts.dataDir ?? dataDir();
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
    const parsed = API[method as ApiMethod].safeParse(args);
    if (!parsed.success) throw new PayloadError(method, parsed.error, args);
    const fn = this[method as ApiMethod] as (...a: unknown[]) => Promise<unknown>;
    return fn.apply(this, parsed.data as unknown[]);
  }

  /** Files the renderer may show: gallery objects/thumbs and inbox thumbs, by content hash. */
  resolveFile(kind: string, name: string): string | null {
    if (!/^[0-9a-f]{16,64}$/.test(name)) return null;
    if (kind === 'image') return this.gallery.objectPath(name);
    if (kind === 'thumb') return this.gallery.thumbPath(name);
    if (kind === 'source') return join(this.home, 'inbox', 'thumbs', `${name}.webp`);
    if (kind === 'plot') return join(this.home, 'plots', `${name}.png`);
    return null;
  }

  private dto(j: JobInfo): JobDto {
    if (j.progress?.preview) this.previews.set(j.id, `data:image/png;base64,${Buffer.from(j.progress.preview).toString('base64')}`);
    return {
      id: j.id,
      kind: j.kind,
      label: j.label,
      state: j.state,
      done: j.progress?.done ?? 0,
      total: j.progress?.total ?? 0,
      message: j.progress?.message ?? null,
      preview: this.previews.get(j.id) ?? null,
      error: j.error,
      result: j.result ?? null,
      ...jobRate(j),
    };
  }

  /** The name the user gave an inbox image, and its thumbnail. */
  private sourceOf(path: string): { name: string; thumb: string | null } {
    const inbox = join(this.home, 'inbox');
    const m = /^([0-9a-f]{32})\.[a-z0-9]*$/.exec(basename(path));
    if (!path.startsWith(inbox) || !m) return { name: basename(path), thumb: null };
    let name = basename(path);
    try {
      name = readFileSync(join(inbox, `${m[1]}.name`), 'utf8');
    } catch {
      // the name file is a nicety; the hash name still identifies the image
    }
    return { name, thumb: `source/${m[1]}` };
  }

  private item(r: OutputRow): GalleryItem {
    const src = this.sourceOf(r.sourcePath);
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

  private get session() {
    return { executionProvider: this.settings.executionProvider, threads: this.settings.threads || undefined };
  }

  // ---- models ----

  private async entries(): Promise<(ModelEntry & { manifest: string })[]> {
    const d = bundledDefaults();
    const out: (ModelEntry & { manifest: string })[] = [];
    const add = async (manifest: string, kind: ModelEntry['kind'], bundled: boolean, id: string) => {
      try {
        const m = (await readJsonFile(manifest, 'manifest')) as {
          name?: string;
          description?: string;
          classes?: unknown;
          validTimeRange?: unknown;
          dataShape?: unknown;
          license?: unknown;
          training?: unknown;
          recommendedWeight?: unknown;
          recommendedT0?: unknown;
        };
        const classes = Array.isArray(m.classes) ? m.classes.filter((c): c is string => typeof c === 'string') : undefined;
        const training = trainingSummary(m.training);
        const range = m.validTimeRange;
        const validTimeRange =
          Array.isArray(range) && range.length === 2 && range.every((v) => typeof v === 'number') ? (range as [number, number]) : undefined;
        out.push({
          id,
          kind,
          name: m.name ?? id,
          description: m.description ?? '',
          bundled,
          manifest,
          ...(classes ? { classes } : {}),
          ...(validTimeRange ? { validTimeRange } : {}),
          ...(Array.isArray(m.dataShape) && m.dataShape.every((d) => typeof d === 'number') ? { dataShape: m.dataShape as number[] } : {}),
          ...(typeof m.license === 'string' ? { license: m.license } : {}),
          ...(kind === 'discriminator' && typeof m.recommendedWeight === 'number' ? { recommendedWeight: m.recommendedWeight } : {}),
          ...(kind === 'score' && typeof m.recommendedT0 === 'number' ? { recommendedT0: m.recommendedT0 } : {}),
          ...(training ? { training } : {}),
        });
      } catch {
        // a broken manifest is skipped here and reported when used
      }
    };
    await add(d.scoreModel, 'score', true, 'bundled:score');
    if (d.discriminator) await add(d.discriminator, 'discriminator', true, 'bundled:discriminator');
    const imported = join(this.home, 'models');
    for (const name of existsSync(imported) ? await readdir(imported) : []) {
      const manifest = join(imported, name, 'manifest.json');
      if (!existsSync(manifest)) continue;
      const format = ((await readJsonFile(manifest, 'manifest').catch(() => ({}))) as { format?: string }).format;
      const kind = format === 'dg-studio/discriminator@1' ? 'discriminator' : format === 'dg-studio/classifier@1' ? 'classifier' : 'score';
      await add(manifest, kind, false, `imported:${name}`);
    }
    const scoreModels = join(this.home, 'score-models');
    for (const name of existsSync(scoreModels) ? await readdir(scoreModels) : []) {
      if (existsSync(join(scoreModels, name, 'manifest.json')))
        await add(join(scoreModels, name, 'manifest.json'), 'score', false, `trained-score:${name}`);
    }
    const mine = join(this.home, 'discriminators');
    for (const name of existsSync(mine) ? await readdir(mine) : []) {
      if (existsSync(join(mine, name, 'manifest.json')))
        await add(join(mine, name, 'manifest.json'), 'discriminator', false, `trained:${name}`);
    }
    return out;
  }

  private async manifestOf(id: string | null, kind: ModelEntry['kind']): Promise<string | undefined> {
    const list = await this.entries();
    if (id === null) return list.find((e) => e.kind === kind && e.bundled)?.manifest;
    const e = list.find((x) => x.id === id && x.kind === kind);
    if (!e) throw new Error(`no ${kind === 'score' ? 'score model' : kind} "${id}"; pick one from the list`);
    return e.manifest;
  }

  // ---- the contract ----

  async getInfo() {
    return { engineVersion: ENGINE_VERSION, mode: this.opts.mode, note: bundledDefaults().note };
  }

  async listModels(): Promise<ModelEntry[]> {
    return (await this.entries()).map(({ manifest: _m, ...e }) => e);
  }

  /** The bundled samples (resources/samples/*.png), through the same inbox as any picked file. */
  async addSamples() {
    const dir = join(resourcesDir(), 'samples');
    const names = (await readdir(dir)).filter((n) => n.toLowerCase().endsWith('.png')).sort();
    return this.addSources({
      files: await Promise.all(names.map(async (name) => ({ name, data: new Uint8Array(await readFile(join(dir, name))) }))),
    });
  }

  /** Store dropped or picked images in the inbox (content-addressed), with thumbnails. */
  async addSources(req: { files: { name: string; data: Uint8Array }[] }) {
    const sources: SourceRef[] = [];
    const errors: { name: string; message: string }[] = [];
    for (const f of req.files) {
      try {
        if (f.data.length === 0) throw new Error('the file is empty');
        if (f.data.length > MAX_UPLOAD_BYTES) throw new Error(`the file is larger than ${MAX_UPLOAD_BYTES >> 20} MiB`);
        let meta: Metadata;
        try {
          meta = await sharp(f.data, { limitInputPixels: MAX_INPUT_PIXELS }).metadata();
        } catch {
          throw new Error('not an image DG Studio can read (PNG, JPEG, WebP, GIF, TIFF, AVIF)');
        }
        if ((meta.width ?? 0) * (meta.height ?? 0) > MAX_INPUT_PIXELS)
          throw new Error(`the image is larger than ${MAX_INPUT_PIXELS} pixels`);
        const sha = createHash('sha256').update(f.data).digest('hex').slice(0, 32);
        const ext = (extname(f.name).toLowerCase() || '.png').replace(/[^.a-z0-9]/g, '');
        const path = join(this.home, 'inbox', `${sha}${ext}`);
        if (!existsSync(path)) {
          const thumb = await sharp(f.data, { limitInputPixels: MAX_INPUT_PIXELS })
            .rotate()
            .resize(128, 128, { fit: 'inside' })
            .webp()
            .toBuffer();
          await writeFileAtomic(join(this.home, 'inbox', 'thumbs', `${sha}.webp`), thumb);
          await writeFileAtomic(path, f.data);
          await writeFileAtomic(join(this.home, 'inbox', `${sha}.name`), f.name);
        }
        sources.push({ id: sha, name: f.name, thumb: `source/${sha}` });
      } catch (e) {
        errors.push({ name: f.name, message: `cannot use "${f.name}": ${(e as Error).message}` });
      }
    }
    return { sources, errors };
  }

  private async sourcePaths(ids: string[]): Promise<string[]> {
    const names = await readdir(join(this.home, 'inbox'));
    return ids.map((id) => {
      const f = names.find((n) => n.startsWith(id) && !n.endsWith('.name'));
      if (!f) throw new Error(`source ${id} is no longer in the inbox; add the image again`);
      return join(this.home, 'inbox', f);
    });
  }

  async translate(req: z.output<typeof API.translate>[0]) {
    const inputs = await this.sourcePaths(req.sources);
    const modelManifest = (await this.manifestOf(req.model, 'score'))!;
    const guided = req.params.dgWeight > 0 || (req.params.dgWeight2 ?? 0) > 0;
    const discriminatorManifest = guided ? await this.manifestOf(req.discriminator, 'discriminator') : undefined;
    if (guided && !discriminatorManifest)
      throw new Error('a DG weight above 0 needs a discriminator, and none is bundled: train or import one, or set the DG weight to 0');
    const classifierManifest = req.params.cgWeight > 0 ? await this.manifestOf(req.classifier, 'classifier') : undefined;
    if (req.params.cgWeight > 0 && !classifierManifest)
      throw new Error(
        'a CG weight above 0 needs a classifier: import one (Settings → Import model) and pick it, or set the CG weight to 0',
      );
    const outDir = this.settings.outputDir ?? join(this.home, 'outputs');
    const session = this.session;
    const job = this.jobs.submit(
      'translate',
      `${inputs.length} image(s), t0 ${req.params.t0}, w ${req.params.dgWeight}`,
      async ({ signal, progress }) => {
        let last = 0;
        const { outputs, errors } = await translateFiles(
          {
            inputs,
            outDir,
            params: req.params,
            modelManifest,
            discriminatorManifest,
            classifierManifest,
            gallery: this.gallery,
            // outputs are named after the names the user's files had, not the inbox's digests
            sourceNames: Object.fromEntries(inputs.map((p) => [p, this.sourceOf(p).name])),
            ...session,
          },
          {
            onStep: (s) => {
              const now = Date.now();
              if (s.preview && now - last > 250) {
                last = now;
                // the whole batch's current estimates side by side (up to 4), not just its first image
                const [, c, h] = s.preview.shape as [number, number, number, number];
                const strip = sideBySide(s.preview.data, s.preview.shape);
                void encodePng(strip.chw, {
                  channels: c as 1 | 3,
                  height: h,
                  width: strip.width,
                  valueRange: [-1, 1],
                }).then((png) =>
                  progress({
                    done: s.done * s.steps + s.step,
                    total: s.total * s.steps,
                    message: `image ${s.done + 1}/${s.total}, step ${s.step}/${s.steps}`,
                    preview: png,
                  }),
                );
              } else
                progress({
                  done: s.done * s.steps + s.step,
                  total: s.total * s.steps,
                  message: `image ${s.done + 1}/${s.total}, step ${s.step}/${s.steps}`,
                });
            },
            onResult: () => this.emit({ type: 'gallery' }),
          },
          signal,
        );
        return { galleryIds: outputs.map((o) => o.galleryId), errors };
      },
    );
    return { jobId: job.id };
  }

  async cancelJob(id: number) {
    return this.jobs.cancel(id);
  }

  async listJobs() {
    return this.jobs.list().map((j) => this.dto(j));
  }

  async gallerySearch(q: z.output<typeof API.gallerySearch>[0]) {
    return this.gallery.search(q).map((r) => this.item(r));
  }

  async galleryUpdate(id: number, u: z.output<typeof API.galleryUpdate>[1]) {
    if (!this.gallery.get(id)) throw new Error(`the gallery has no output ${id}`);
    if (u.favourite !== undefined) this.gallery.setFavourite(id, u.favourite);
    if (u.note !== undefined) this.gallery.setNote(id, u.note);
    if (u.addTag) this.gallery.addTag(id, u.addTag);
    if (u.removeTag) this.gallery.removeTag(id, u.removeTag);
    this.emit({ type: 'gallery' });
    return this.item(this.gallery.get(id)!);
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

  async sweep(req: z.output<typeof API.sweep>[0]) {
    const inputs = await this.sourcePaths(req.sources);
    const reference = await this.sourcePaths(req.reference);
    const modelManifest = (await this.manifestOf(req.model, 'score'))!;
    const discriminatorManifest = req.weights.some((w) => w > 0) ? await this.manifestOf(req.discriminator, 'discriminator') : undefined;
    const job = this.jobs.submit('sweep', `sweep ${req.t0s.length}×${req.weights.length}`, async ({ signal, progress }) => {
      const outDir = join(this.home, 'sweeps', `${Date.now()}`);
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
          ...this.session,
        },
        { onRow: (row) => progress({ done: ++done, total, message: `t0 ${row.t0}, w ${row.w}` }) },
        signal,
      );
      // one example image per (t0, w) cell for the grid: the first source's translation
      const first = basename(inputs[0]!, extname(inputs[0]!));
      const cells = [];
      for (const row of r.rows)
        cells.push({ t0: row.t0, w: row.w, image: await this.keepPlot(join(outDir, `t${row.t0}_w${row.w}`, `${first}.png`)) });
      return { rows: r.rows, plot: await this.keepPlot(r.plots[0]!), cells };
    });
    return { jobId: job.id };
  }

  /** Keep a plot PNG where resolveFile can serve it; returns its file reference. */
  private async keepPlot(path: string): Promise<string> {
    await mkdir(join(this.home, 'plots'), { recursive: true });
    const plot = await readFile(path);
    const sha = createHash('sha256').update(plot).digest('hex').slice(0, 32);
    await writeFileAtomic(join(this.home, 'plots', `${sha}.png`), plot);
    return `plot/${sha}`;
  }

  async diagnosePaths(req: z.output<typeof API.diagnosePaths>[0]) {
    const sources = await this.sourcePaths(req.sources);
    const reference = await this.sourcePaths(req.reference);
    const modelManifest = (await this.manifestOf(req.model, 'score'))!;
    const discriminatorManifest = (await this.manifestOf(req.discriminator, 'discriminator'))!;
    const job = this.jobs.submit('paths', `log r along paths, t0 ${req.t0}, w ${req.weight}`, async () => {
      const r = await diagnosePaths({
        sources,
        reference,
        modelManifest,
        discriminatorManifest,
        t0: req.t0,
        weight: req.weight,
        params: req.params,
        outDir: join(this.home, 'paths', `${Date.now()}`),
        ...this.session,
      });
      return { rows: r.rows, plot: await this.keepPlot(r.plotPath) };
    });
    return { jobId: job.id };
  }

  async trainDiscriminator(req: z.output<typeof API.trainDiscriminator>[0]) {
    const sources = await this.sourcePaths(req.sources);
    const targets = await this.sourcePaths(req.targets);
    const modelManifest = (await this.manifestOf(req.model, 'score'))!;
    const outDir = join(this.home, 'discriminators', req.name);
    if (existsSync(outDir)) throw new Error(`a discriminator named "${req.name}" exists already; choose another name (or delete it first)`);
    const job = this.jobs.submit('train', `train discriminator "${req.name}"`, async ({ signal, progress }) => {
      const losses: number[] = [];
      const r = await trainDiscriminatorOnThread(
        {
          modelManifest,
          sources,
          targets,
          outDir,
          t0Range: req.t0Range,
          steps: req.steps,
          batchSize: req.batchSize,
          evalEvery: Math.max(10, Math.floor(req.steps / 4)),
          ...this.session,
        },
        {
          onProgress: (p) => {
            losses.push(p.lossEma);
            progress({ done: p.step, total: p.steps, message: JSON.stringify({ loss: p.lossEma, losses: losses.slice(-200) }) });
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
  async trainScoreModel(req: z.output<typeof API.trainScoreModel>[0]) {
    const targets = await this.sourcePaths(req.targets);
    const previewSources = await this.sourcePaths(req.previewSources);
    const outDir = join(this.home, 'score-models', req.name);
    if (existsSync(outDir)) throw new Error(`a score model named "${req.name}" exists already; choose another name (or delete it first)`);
    const job = this.jobs.submit('train', `train score model "${req.name}"`, async ({ signal, progress }) => {
      const losses: number[] = [];
      let lastStep = 0;
      let last = { imagesPerSecond: 0, etaSeconds: null as number | null, heldout: null as number[] | null };
      const r = await trainScoreModelOnThread(
        {
          data: targets,
          previewSources,
          outDir,
          arch: { channels: req.channels, patch: req.patch, resolution: req.resolution, groups: Math.min(8, req.channels) },
          batchSize: req.batchSize,
          tMax: req.tMax,
          steps: req.steps,
          checkpointMinutes: 3,
          evalMinutes: 5,
          name: req.name,
          ...this.session,
        },
        {
          onProgress: (p) => {
            losses.push(p.lossEma);
            lastStep = p.step;
            last = { ...last, imagesPerSecond: p.imagesPerSecond, etaSeconds: p.etaSeconds };
            progress({ done: p.step, total: req.steps, message: JSON.stringify({ loss: p.lossEma, losses: losses.slice(-200), ...last }) });
          },
          onPreview: (png) =>
            progress({ done: lastStep, total: req.steps, message: JSON.stringify({ losses: losses.slice(-200), ...last }), preview: png }),
          onEval: (e) => {
            last = { ...last, heldout: e.errors };
            progress({ done: e.step, total: req.steps, message: JSON.stringify({ losses: losses.slice(-200), ...last }) });
          },
        },
        signal,
      );
      progress({ done: r.steps, total: req.steps, message: JSON.stringify({ losses: losses.slice(-200), ...last, heldout: r.heldout }) });
      return { manifest: r.manifestPath, steps: r.steps, cancelled: r.cancelled, heldout: r.heldout, id: `trained-score:${req.name}` };
    });
    return { jobId: job.id };
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

  /** Remove a model the user imported or trained (never a bundled one): its folder under the data folder. */
  async deleteModel(id: string): Promise<boolean> {
    const e = (await this.entries()).find((x) => x.id === id);
    if (!e) throw new Error(`no model "${id}"; pick one from the list`);
    if (e.bundled) throw new Error(`"${e.name}" is bundled with DG Studio and cannot be deleted`);
    const folder = dirname(e.manifest);
    // only folders the studio made: models/, score-models/, discriminators/ under its data folder
    const parents = ['models', 'score-models', 'discriminators'].map((d) => join(this.home, d));
    if (!parents.includes(dirname(folder))) throw new Error(`"${e.name}" is not in the studio's data folder; remove it by hand`);
    await rm(folder, { recursive: true, force: true });
    return true;
  }

  /** Import a model: its manifest (one .json) and the files it names; validated by loading it. */
  async importModel(req: z.output<typeof API.importModel>[0]): Promise<ModelEntry> {
    const manifests = req.files.filter((f) => f.name.toLowerCase().endsWith('.json'));
    if (manifests.length !== 1) throw new Error(`give exactly one manifest (.json) with the model's files; got ${manifests.length}`);
    let slug = '';
    try {
      const m = JSON.parse(new TextDecoder().decode(manifests[0]!.data)) as { name?: string };
      slug = (m.name ?? 'model').replace(/[^\w.-]+/g, '-').slice(0, 60) || 'model';
    } catch (e) {
      throw new Error(`cannot read manifest "${manifests[0]!.name}": not valid JSON (${(e as Error).message})`, { cause: e });
    }
    const dir = join(this.home, 'models', slug);
    if (existsSync(dir)) throw new Error(`a model named "${slug}" is already imported; rename it in its manifest`);
    await mkdir(dir, { recursive: true });
    try {
      for (const f of req.files) await writeFileAtomic(join(dir, f === manifests[0] ? 'manifest.json' : f.name), f.data);
      const manifest = join(dir, 'manifest.json');
      await checkManifest(manifest, req.kind, this.session);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw new Error((e as Error).message.replaceAll(dir + '/', ''), { cause: e });
    }
    const entry = (await this.listModels()).find((m) => m.id === `imported:${slug}`);
    if (!entry) throw new Error(`imported "${slug}" but cannot list it`);
    return entry;
  }

  /** Inspect an uploaded ONNX file in a scratch folder (removed after) and return the checked proposal. */
  async proposeManifest(req: z.output<typeof API.proposeManifest>[0]): Promise<ManifestProposal> {
    const scratch = join(this.home, 'tmp', `inspect-${randomBytes(6).toString('hex')}`);
    await mkdir(scratch, { recursive: true });
    try {
      const onnx = join(scratch, req.file.name);
      await writeFileAtomic(onnx, req.file.data);
      const r = await inspectOnnxFile(onnx, { kind: req.kind }, this.session);
      const strip = (t: string) => t.replaceAll(scratch + '/', '').replaceAll(scratch, '');
      return {
        kind: r.inspection.kind,
        kindWhy: r.inspection.kindWhy,
        manifest: JSON.stringify(r.inspection.manifest, null, 2),
        guesses: r.inspection.guesses,
        inputs: r.inspection.inputs,
        outputs: r.inspection.outputs,
        problem: r.problem === null ? null : strip(r.problem),
        warnings: r.warnings.map(strip),
      };
    } catch (e) {
      throw new Error(
        `cannot inspect "${req.file.name}": ${(e as Error).message.replaceAll(scratch + '/', '').replace(/^"[^"]*": /, '')}`,
        { cause: e },
      );
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  // ---- annotation studies ----

  private get studies(): Studies {
    return new Studies(this.gallery);
  }

  async listStudies() {
    return this.studies.list();
  }

  async createStudy(req: z.output<typeof API.createStudy>[0]) {
    return this.studies.create(req);
  }

  /** The next pair for an annotator, as image URLs (the blank obvious-check image included). */
  async nextStudyItem(studyId: number, annotator: string) {
    const it = this.studies.next(studyId, annotator);
    if (!it) return null;
    const grey = join(this.home, 'plots', `${GREY_IMAGE}.png`);
    if (!existsSync(grey)) {
      await mkdir(join(this.home, 'plots'), { recursive: true });
      await obviousImage(grey);
    }
    const url = (id: number | null) => (id === null ? `plot/${basename(grey, '.png')}` : `image/${this.gallery.get(id)?.sha256}`);
    const src = this.sourceOf(it.sourcePath);
    return {
      itemId: it.itemId,
      position: it.position,
      total: it.total,
      done: it.done,
      source: src.thumb,
      left: url(it.left),
      right: url(it.right),
    };
  }

  async judge(studyId: number, annotator: string, itemId: number, choice: 'left' | 'right' | 'tie') {
    this.studies.judge(studyId, annotator, itemId, choice);
  }

  async undoJudgement(studyId: number, annotator: string) {
    return this.studies.undo(studyId, annotator);
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
