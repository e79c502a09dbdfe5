/**
 * The gallery: a SQLite index (better-sqlite3, WAL) of every result, with the images stored
 * content-addressed beside it. Files are written (temp + rename) before their row commits,
 * and on open a reconciliation removes what a crash left half-done, both ways.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { zipSync } from 'fflate';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { TranslateParamsSchema, type TranslateParams } from '../../shared/params.js';
import { readPngTextFromBuffer, writeFileAtomic } from '../engine/io/image-io.js';
import { fileInside, safeFileStem } from './folders.js';
import { MIGRATIONS } from './gallery-schema.js';

export interface RunInfo {
  params: TranslateParams;
  inputs: string[];
  model: { name: string; sha256: string };
  discriminator: { name: string; sha256: string } | null;
  engineVersion: string;
}

export interface OutputRow {
  id: number;
  runId: number;
  createdAt: string;
  sourcePath: string;
  /** the source's original file name (null in rows from before schema 3: the path's base name) */
  sourceName: string | null;
  sha256: string | null;
  seed: number;
  error: string | null;
  favourite: boolean;
  note: string;
  tags: string[];
  metrics: Record<string, number> | null;
  t0: number;
  dgWeight: number;
  modelName: string;
  discriminatorName: string | null;
  params: TranslateParams;
}

export interface SearchQuery {
  model?: string;
  t0Min?: number;
  t0Max?: number;
  dgWeight?: number;
  tag?: string;
  favourite?: boolean;
  since?: string;
  until?: string;
  text?: string;
  includeErrors?: boolean;
  limit?: number;
  /** keyset cursor: the last row of the previous page */
  after?: { createdAt: string; id: number };
}

export class Gallery {
  readonly db: Database.Database;

  private constructor(readonly dir: string) {
    this.db = new Database(join(dir, 'gallery.sqlite3'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('synchronous = NORMAL');
    this.migrate();
  }

  /** Open (creating if needed) and reconcile what a crash may have left. */
  static async open(dir: string): Promise<Gallery> {
    for (const sub of ['objects', 'thumbs', 'tmp']) await mkdir(join(dir, sub), { recursive: true });
    const g = new Gallery(dir);
    await g.reconcile();
    return g;
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new Error(`gallery "${this.dir}" was written by a newer DG Studio (schema ${version}); update the app`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  objectPath(sha: string): string {
    return join(this.dir, 'objects', sha.slice(0, 2), `${sha.slice(2)}.png`);
  }

  thumbPath(sha: string): string {
    return join(this.dir, 'thumbs', sha.slice(0, 2), `${sha.slice(2)}.webp`);
  }

  /**
   * Remove temp files, files no row references, and rows whose file is gone; mark runs
   * that were running as interrupted (they can be resumed).
   */
  async reconcile(): Promise<{ orphanFiles: number; missingFiles: number; interruptedRuns: number }> {
    await rm(join(this.dir, 'tmp'), { recursive: true, force: true });
    await mkdir(join(this.dir, 'tmp'));
    const known = new Set(this.db.prepare('SELECT DISTINCT sha256 FROM outputs WHERE sha256 IS NOT NULL').pluck().all() as string[]);
    let orphanFiles = 0;
    for (const prefix of await readdir(join(this.dir, 'objects'))) {
      for (const f of await readdir(join(this.dir, 'objects', prefix))) {
        const sha = prefix + f.replace(/\.png$/, '');
        if (!f.endsWith('.png') || !known.has(sha)) {
          await rm(join(this.dir, 'objects', prefix, f), { force: true });
          await rm(this.thumbPath(sha), { force: true });
          orphanFiles++;
        }
      }
    }
    let missingFiles = 0;
    for (const sha of known) {
      if (!(await stat(this.objectPath(sha)).catch(() => null))) {
        missingFiles += this.db.prepare('DELETE FROM outputs WHERE sha256 = ?').run(sha).changes;
      }
    }
    const interruptedRuns = this.db.prepare("UPDATE runs SET status = 'interrupted' WHERE status = 'running'").run().changes;
    return { orphanFiles, missingFiles, interruptedRuns };
  }

  startRun(info: RunInfo): number {
    const r = this.db
      .prepare(
        `INSERT INTO runs (created_at, status, params_json, inputs_json, model_name, model_sha, disc_name, disc_sha, engine_version, t0, dg_weight)
         VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        new Date().toISOString(),
        JSON.stringify(info.params),
        JSON.stringify(info.inputs),
        info.model.name,
        info.model.sha256,
        info.discriminator?.name ?? null,
        info.discriminator?.sha256 ?? null,
        info.engineVersion,
        info.params.t0,
        info.params.dgWeight,
      );
    return Number(r.lastInsertRowid);
  }

  /** Mark an interrupted (or cancelled) run as running again, to finish it. */
  resumeRun(runId: number): void {
    this.db.prepare("UPDATE runs SET status = 'running' WHERE id = ?").run(runId);
  }

  finishRun(runId: number, status: 'done' | 'cancelled' | 'failed'): void {
    this.db.prepare('UPDATE runs SET status = ? WHERE id = ?').run(status, runId);
  }

  run(runId: number): (RunInfo & { id: number; status: string }) | undefined {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(runId) as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      id: r['id'] as number,
      status: r['status'] as string,
      params: JSON.parse(r['params_json'] as string),
      inputs: JSON.parse(r['inputs_json'] as string),
      model: { name: r['model_name'] as string, sha256: r['model_sha'] as string },
      discriminator: r['disc_name'] ? { name: r['disc_name'] as string, sha256: r['disc_sha'] as string } : null,
      engineVersion: r['engine_version'] as string,
    };
  }

  /** Runs a crash or a stopped server left unfinished, newest first, with how far they got. */
  interruptedRuns(): { id: number; createdAt: string; total: number; done: number; t0: number; dgWeight: number; modelName: string }[] {
    const rows = this.db
      .prepare(
        `SELECT r.id, r.created_at, r.inputs_json, r.t0, r.dg_weight, r.model_name,
                (SELECT COUNT(*) FROM outputs o WHERE o.run_id = r.id AND o.error IS NULL) AS done
         FROM runs r WHERE r.status = 'interrupted' ORDER BY r.id DESC LIMIT 20`,
      )
      .all() as Record<string, unknown>[];
    return rows.map((r) => ({
      id: r['id'] as number,
      createdAt: r['created_at'] as string,
      total: (JSON.parse(r['inputs_json'] as string) as unknown[]).length,
      done: r['done'] as number,
      t0: r['t0'] as number,
      dgWeight: r['dg_weight'] as number,
      modelName: r['model_name'] as string,
    }));
  }

  /** Sources of a run that already have a result (for resuming). */
  doneSources(runId: number): Set<string> {
    return new Set(this.db.prepare('SELECT source_path FROM outputs WHERE run_id = ? AND error IS NULL').pluck().all(runId) as string[]);
  }

  /** Store a PNG: the file (and its thumbnail) first, then the row. */
  async addOutput(
    runId: number,
    o: { png: Uint8Array; sourcePath: string; sourceName?: string | undefined; seed: number; metrics?: Record<string, number> },
  ): Promise<number> {
    const sha = createHash('sha256').update(o.png).digest('hex');
    const path = this.objectPath(sha);
    if (!(await stat(path).catch(() => null))) {
      await mkdir(join(this.dir, 'objects', sha.slice(0, 2)), { recursive: true });
      await mkdir(join(this.dir, 'thumbs', sha.slice(0, 2)), { recursive: true });
      const thumb = await sharp(o.png).resize(128, 128, { fit: 'inside' }).webp({ quality: 80 }).toBuffer();
      await writeFileAtomic(this.thumbPath(sha), thumb);
      await writeFileAtomic(path, o.png);
    }
    const r = this.db
      .prepare(
        'INSERT INTO outputs (run_id, created_at, source_path, source_name, sha256, seed, metrics_json) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(runId, new Date().toISOString(), o.sourcePath, o.sourceName ?? null, sha, o.seed, o.metrics ? JSON.stringify(o.metrics) : null);
    return Number(r.lastInsertRowid);
  }

  /** Record a per-image failure: the run goes on, the error stays findable. */
  addError(runId: number, sourcePath: string, seed: number, message: string, sourceName?: string): number {
    const r = this.db
      .prepare('INSERT INTO outputs (run_id, created_at, source_path, source_name, sha256, seed, error) VALUES (?, ?, ?, ?, NULL, ?, ?)')
      .run(runId, new Date().toISOString(), sourcePath, sourceName ?? null, seed, message);
    return Number(r.lastInsertRowid);
  }

  private rowFrom(r: Record<string, unknown>): OutputRow {
    const id = r['id'] as number;
    return {
      id,
      runId: r['run_id'] as number,
      createdAt: r['created_at'] as string,
      sourcePath: r['source_path'] as string,
      sourceName: (r['source_name'] as string | null) ?? null,
      sha256: (r['sha256'] as string | null) ?? null,
      seed: r['seed'] as number,
      error: (r['error'] as string | null) ?? null,
      favourite: r['favourite'] === 1,
      note: r['note'] as string,
      tags: this.db.prepare('SELECT tag FROM tags WHERE output_id = ? ORDER BY tag').pluck().all(id) as string[],
      metrics: r['metrics_json'] ? JSON.parse(r['metrics_json'] as string) : null,
      t0: r['t0'] as number,
      dgWeight: r['dg_weight'] as number,
      modelName: r['model_name'] as string,
      discriminatorName: (r['disc_name'] as string | null) ?? null,
      params: { ...JSON.parse(r['params_json'] as string), seed: r['seed'] as number },
    };
  }

  get(id: number): OutputRow | undefined {
    const r = this.db
      .prepare(
        'SELECT o.*, r.t0, r.dg_weight, r.model_name, r.disc_name, r.params_json FROM outputs o JOIN runs r ON r.id = o.run_id WHERE o.id = ?',
      )
      .get(id) as Record<string, unknown> | undefined;
    return r ? this.rowFrom(r) : undefined;
  }

  /** Newest first, filtered, one page at a time (keyset pagination: fast at any depth). */
  search(q: SearchQuery = {}): OutputRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (clause: string, ...v: unknown[]) => {
      where.push(clause);
      args.push(...v);
    };
    if (!q.includeErrors) add('o.error IS NULL');
    if (q.model) add('r.model_name = ?', q.model);
    if (q.t0Min !== undefined) add('r.t0 >= ?', q.t0Min);
    if (q.t0Max !== undefined) add('r.t0 <= ?', q.t0Max);
    if (q.dgWeight !== undefined) add('r.dg_weight = ?', q.dgWeight);
    if (q.favourite) add('o.favourite = 1');
    if (q.since) add('o.created_at >= ?', q.since);
    if (q.until) add('o.created_at <= ?', q.until);
    if (q.tag) add('EXISTS (SELECT 1 FROM tags t WHERE t.output_id = o.id AND t.tag = ?)', q.tag);
    if (q.text) {
      const like = `%${q.text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      add(
        "(o.note LIKE ? ESCAPE '\\' OR o.source_path LIKE ? ESCAPE '\\' OR o.source_name LIKE ? ESCAPE '\\' OR r.model_name LIKE ? ESCAPE '\\')",
        like,
        like,
        like,
        like,
      );
    }
    if (q.after) add('(o.created_at, o.id) < (?, ?)', q.after.createdAt, q.after.id);
    const sql =
      'SELECT o.*, r.t0, r.dg_weight, r.model_name, r.disc_name, r.params_json FROM outputs o JOIN runs r ON r.id = o.run_id' +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ' ORDER BY o.created_at DESC, o.id DESC LIMIT ?';
    args.push(Math.min(Math.max(q.limit ?? 50, 1), 500));
    return (this.db.prepare(sql).all(...args) as Record<string, unknown>[]).map((r) => this.rowFrom(r));
  }

  setFavourite(id: number, favourite: boolean): void {
    this.db.prepare('UPDATE outputs SET favourite = ? WHERE id = ?').run(favourite ? 1 : 0, id);
  }

  setNote(id: number, note: string): void {
    this.db.prepare('UPDATE outputs SET note = ? WHERE id = ?').run(note, id);
  }

  addTag(id: number, tag: string): void {
    this.db.prepare('INSERT OR IGNORE INTO tags (output_id, tag) VALUES (?, ?)').run(id, tag);
  }

  removeTag(id: number, tag: string): void {
    this.db.prepare('DELETE FROM tags WHERE output_id = ? AND tag = ?').run(id, tag);
  }

  /** Delete rows, and files no remaining row uses. */
  async delete(ids: number[]): Promise<number> {
    const shas = ids.map((id) => this.get(id)?.sha256).filter((s): s is string => !!s);
    const del = this.db.prepare('DELETE FROM outputs WHERE id = ?');
    // in chunks of 1,000, yielding between them: a large delete never holds the engine for long
    let n = 0;
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      n += this.db.transaction(() => chunk.reduce((c, id) => c + del.run(id).changes, 0))();
      await new Promise((r) => setImmediate(r));
    }
    for (const sha of new Set(shas)) {
      const still = this.db.prepare('SELECT COUNT(*) FROM outputs WHERE sha256 = ?').pluck().get(sha) as number;
      if (still === 0) {
        await rm(this.objectPath(sha), { force: true });
        await rm(this.thumbPath(sha), { force: true });
      }
    }
    return n;
  }

  /** Copy outputs to a folder as PNGs with JSON sidecars. */
  /**
   * What an export holds for each output with an image: a server-chosen name (a bounded, sanitised stem of the
   * source's name and the id), the PNG's path in the store, and the sidecar — which names files, never where they
   * were: an export is shared.
   */
  private exportEntries(ids: number[]): { stem: string; png: string; sidecar: string }[] {
    const out: { stem: string; png: string; sidecar: string }[] = [];
    for (const id of ids) {
      const row = this.get(id);
      if (!row?.sha256) continue;
      const sourceName = row.sourceName ?? basename(row.sourcePath);
      const stem = `${safeFileStem(sourceName.replace(/\.[^.]+$/, ''))}-${row.id}`;
      const { sourcePath: _where, ...shareable } = row;
      out.push({
        stem,
        png: this.objectPath(row.sha256),
        sidecar: JSON.stringify({ ...shareable, sourceName, file: `${stem}.png` }, null, 2),
      });
    }
    return out;
  }

  /** Copy results (PNG + sidecar each) into `dir`; every name checked to stay in it. */
  async export(ids: number[], dir: string): Promise<string[]> {
    await mkdir(dir, { recursive: true });
    const written: string[] = [];
    for (const e of this.exportEntries(ids)) {
      const png = fileInside(dir, `${e.stem}.png`);
      const tmp = fileInside(dir, `.${e.stem}.${randomBytes(4).toString('hex')}.tmp`);
      await copyFile(e.png, tmp);
      await rename(tmp, png);
      await writeFileAtomic(fileInside(dir, `${e.stem}.json`), e.sidecar);
      written.push(png);
    }
    return written;
  }

  /** The same as one ZIP file at `zipPath` (stored, not recompressed: PNGs are compressed already), for a browser
   * on another machine to download; returns how many results it holds. */
  async exportZip(ids: number[], zipPath: string): Promise<number> {
    const entries = this.exportEntries(ids);
    const files: Record<string, Uint8Array> = {};
    for (const e of entries) {
      files[`${e.stem}.png`] = new Uint8Array(await readFile(e.png));
      files[`${e.stem}.json`] = new TextEncoder().encode(e.sidecar);
    }
    await mkdir(dirname(zipPath), { recursive: true });
    await writeFileAtomic(zipPath, zipSync(files, { level: 0 }));
    return entries.length;
  }
}

/** Parameters to reuse, from a PNG the studio wrote (its "dg-studio" text chunk). */
export async function parametersFromPng(path: string): Promise<TranslateParams> {
  let text: Record<string, string>;
  try {
    text = readPngTextFromBuffer(await readFile(path));
  } catch (e) {
    throw new Error(`cannot read "${basename(path)}": not a readable PNG (${(e as Error).message})`, { cause: e });
  }
  const record = text['dg-studio'];
  if (!record) throw new Error(`"${basename(path)}" has no DG Studio parameters (no "dg-studio" text chunk)`);
  const parsed = TranslateParamsSchema.safeParse(JSON.parse(record).params);
  if (!parsed.success)
    throw new Error(`"${basename(path)}" carries parameters this version cannot use: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
