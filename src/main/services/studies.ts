/**
 * Annotation mode: blind pairwise studies over gallery outputs. Setting A against setting B
 * (e.g. plain SDEdit vs SDEdit + DG at one t0), paired by source image and seed; every
 * annotator sees the pairs in their own seeded order with seeded left/right sides; attention
 * checks (a repeated pair, an obvious pair) are flagged. Stored in the gallery's SQLite file.
 */
import { basename } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { createHash } from 'node:crypto';
import { encodePng, readImage, writeFileAtomic } from '../engine/io/image-io.js';
import { createFeatureExtractor } from '../engine/models/features.js';
import { frechetDistance, l2, swd, swdPyramids } from '../engine/eval/metrics.js';
import { Rng } from '../engine/rng.js';
import { bradleyTerry, itemAgreement, preferenceMatrix, wilsonInterval } from '../engine/eval/study-stats.js';
import type { Gallery, OutputRow } from './gallery.js';

export interface SettingFilter {
  t0: number;
  dgWeight: number;
  model?: string | undefined;
}

export interface StudyItemView {
  itemId: number;
  position: number;
  total: number;
  done: number;
  sourcePath: string;
  /** output ids shown left and right (null: the obvious-check blank image) */
  left: number | null;
  right: number | null;
  leftIsA: boolean;
}

export interface StudySummary {
  study: { id: number; name: string; question: string; seed: number; a: SettingFilter; b: SettingFilter };
  judgements: number;
  annotators: { name: string; judged: number; repeatConsistent: number | null; obviousPassed: number | null; flagged: boolean }[];
  winRateB: { wins: number; ties: number; losses: number; rate: number; low: number; high: number };
  bradleyTerry: { a: number; b: number };
  /** every setting: Bradley–Terry log-strength and its win rate (ties half) with a Wilson interval */
  settings: (SettingFilter & { strength: number; games: number; rate: number; low: number; high: number })[];
  fleissKappa: number | null;
  /** share of judgements where the human choice agrees with lower L2 to the source */
  agreementWithL2: number | null;
  /**
   * with a reference set: each setting's realism by SWD and Fréchet distance against it, and the
   * Spearman correlation between the humans' Bradley–Terry strengths and each metric's ranking
   * (lower distance = more realistic; +1: the metric orders the settings as the humans do)
   */
  metricAgreement: { swd: number[]; fd: number[]; spearmanSwd: number; spearmanFd: number } | null;
}

/** Spearman rank correlation (average ranks for ties). */
export function spearman(x: number[], y: number[]): number {
  const rank = (v: number[]) => {
    const order = v.map((val, i) => [val, i] as const).sort((a, b) => a[0] - b[0]);
    const r = new Array<number>(v.length);
    for (let i = 0; i < order.length;) {
      let j = i;
      while (j + 1 < order.length && order[j + 1]![0] === order[i]![0]) j++;
      for (let k = i; k <= j; k++) r[order[k]![1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const [rx, ry] = [rank(x), rank(y)];
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const [mx, my] = [mean(rx), mean(ry)];
  let [sxy, sxx, syy] = [0, 0, 0];
  for (let i = 0; i < x.length; i++) {
    sxy += (rx[i]! - mx) * (ry[i]! - my);
    sxx += (rx[i]! - mx) ** 2;
    syy += (ry[i]! - my) ** 2;
  }
  return sxx && syy ? sxy / Math.sqrt(sxx * syy) : NaN;
}

const OBVIOUS = -1;

function hashSeed(seed: number, annotator: string): number {
  return (seed ^ parseInt(createHash('sha256').update(annotator).digest('hex').slice(0, 8), 16)) >>> 0;
}

export class Studies {
  constructor(private readonly g: Gallery) {}

  private match(f: SettingFilter): OutputRow[] {
    return this.g.search({ t0Min: f.t0 - 1e-9, t0Max: f.t0 + 1e-9, dgWeight: f.dgWeight, model: f.model, limit: 500 });
  }

  /**
   * Pairs for every two settings (A/B, or a t0 × w grid) over the sources that have results
   * for all of them with the same seed; plus ~10 % attention checks.
   */
  create(opts: {
    name: string;
    question: 'realism' | 'faithfulness';
    seed: number;
    settings?: SettingFilter[];
    a?: SettingFilter;
    b?: SettingFilter;
  }): number {
    const settings = opts.settings ?? (opts.a && opts.b ? [opts.a, opts.b] : []);
    if (settings.length < 2) throw new Error('a study compares at least two settings');
    const key = (r: OutputRow) => `${r.sourcePath}|${r.seed}`;
    const bySetting = settings.map((f) => new Map(this.match(f).map((r) => [key(r), r])));
    const keys = [...bySetting[0]!.keys()].filter((k) => bySetting.every((m) => m.has(k)));
    if (keys.length < 2) {
      throw new Error(
        `need at least two sources with results for every setting (found ${keys.length}); translate the same images with each setting and the same seed first`,
      );
    }
    const pairs: { a: OutputRow; b: OutputRow; i: number; j: number }[] = [];
    for (const k of keys)
      for (let i = 0; i < settings.length; i++)
        for (let j = i + 1; j < settings.length; j++) pairs.push({ a: bySetting[i]!.get(k)!, b: bySetting[j]!.get(k)!, i, j });
    const rng = new Rng(opts.seed);
    return this.g.db.transaction(() => {
      const id = Number(
        this.g.db
          .prepare('INSERT INTO studies (name, question, seed, created_at, settings_json) VALUES (?, ?, ?, ?, ?)')
          .run(opts.name, opts.question, opts.seed, new Date().toISOString(), JSON.stringify({ settings, a: settings[0], b: settings[1] }))
          .lastInsertRowid,
      );
      const ins = this.g.db.prepare(
        'INSERT INTO study_items (study_id, a_output, b_output, a_setting, b_setting, source_path, check_kind, repeat_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const ids = pairs.map((p) => Number(ins.run(id, p.a.id, p.b.id, p.i, p.j, p.a.sourcePath, null, null).lastInsertRowid));
      const checks = Math.max(1, Math.round(pairs.length * 0.1));
      for (let c = 0; c < checks; c++) {
        const k = Math.floor(rng.uniform() * pairs.length);
        const p = pairs[k]!;
        ins.run(id, p.a.id, p.b.id, p.i, p.j, p.a.sourcePath, 'repeat', ids[k]);
        // obvious: a real result against a flat grey image (B side = OBVIOUS); the result must win
        ins.run(id, p.b.id, OBVIOUS, p.j, p.j, p.a.sourcePath, 'obvious', null);
      }
      return id;
    })();
  }

  list(): { id: number; name: string; question: string; items: number }[] {
    return this.g.db
      .prepare(
        'SELECT s.id, s.name, s.question, COUNT(i.id) AS items FROM studies s LEFT JOIN study_items i ON i.study_id = s.id GROUP BY s.id ORDER BY s.id DESC',
      )
      .all() as { id: number; name: string; question: string; items: number }[];
  }

  /** A study's name, question, seed and settings (an unknown id: an error that says so). */
  study(id: number) {
    const s = this.g.db.prepare('SELECT * FROM studies WHERE id = ?').get(id) as
      // question: the table's CHECK keeps it to these two
      { id: number; name: string; question: 'realism' | 'faithfulness'; seed: number; settings_json: string } | undefined;
    if (!s) throw new Error(`there is no study ${id}`);
    const settings = JSON.parse(s.settings_json) as { a: SettingFilter; b: SettingFilter; settings?: SettingFilter[] };
    return {
      id: s.id,
      name: s.name,
      question: s.question,
      seed: s.seed,
      a: settings.a,
      b: settings.b,
      settings: settings.settings ?? [settings.a, settings.b],
    };
  }

  /** An annotator's order and sides: reproducible from the study seed and the annotator's name. */
  plan(studyId: number, annotator: string): { itemId: number; leftIsA: boolean }[] {
    const s = this.study(studyId);
    const items = this.g.db.prepare('SELECT id FROM study_items WHERE study_id = ? ORDER BY id').pluck().all(studyId) as number[];
    const rng = new Rng(hashSeed(s.seed, annotator));
    const order = [...items];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order.map((itemId) => ({ itemId, leftIsA: rng.uniform() < 0.5 }));
  }

  next(studyId: number, annotator: string): StudyItemView | null {
    const plan = this.plan(studyId, annotator);
    const done = new Set(
      this.g.db
        .prepare('SELECT item_id FROM judgements WHERE study_id = ? AND annotator = ? AND undone = 0')
        .pluck()
        .all(studyId, annotator) as number[],
    );
    const position = plan.findIndex((p) => !done.has(p.itemId));
    if (position < 0) return null;
    const p = plan[position]!;
    const item = this.g.db.prepare('SELECT * FROM study_items WHERE id = ?').get(p.itemId) as {
      a_output: number;
      b_output: number;
      source_path: string;
    };
    const b = item.b_output === OBVIOUS ? null : item.b_output;
    return {
      itemId: p.itemId,
      position,
      total: plan.length,
      done: done.size,
      sourcePath: item.source_path,
      left: p.leftIsA ? item.a_output : b,
      right: p.leftIsA ? b : item.a_output,
      leftIsA: p.leftIsA,
    };
  }

  /** Record a judgement: 'left', 'right' or 'tie' as seen, stored as a/b with the side shown. */
  judge(studyId: number, annotator: string, itemId: number, seen: 'left' | 'right' | 'tie'): void {
    const p = this.plan(studyId, annotator).find((x) => x.itemId === itemId);
    if (!p) throw new Error(`item ${itemId} is not part of study ${studyId}`);
    const choice = seen === 'tie' ? 'tie' : (seen === 'left') === p.leftIsA ? 'a' : 'b';
    const position = this.g.db
      .prepare('SELECT COUNT(*) FROM judgements WHERE study_id = ? AND annotator = ?')
      .pluck()
      .get(studyId, annotator) as number;
    this.g.db
      .prepare(
        'INSERT INTO judgements (study_id, item_id, annotator, created_at, position, left_is_a, choice) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(studyId, itemId, annotator, new Date().toISOString(), position, p.leftIsA ? 1 : 0, choice);
  }

  /** Undo the annotator's last judgement (kept in the table, marked undone). */
  undo(studyId: number, annotator: string): boolean {
    const last = this.g.db
      .prepare('SELECT id FROM judgements WHERE study_id = ? AND annotator = ? AND undone = 0 ORDER BY id DESC LIMIT 1')
      .pluck()
      .get(studyId, annotator) as number | undefined;
    if (last === undefined) return false;
    this.g.db.prepare('UPDATE judgements SET undone = 1 WHERE id = ?').run(last);
    return true;
  }

  /** Realism metrics per setting (its study outputs against the reference) and their rank agreement with the humans. */
  private async metricAgreement(studyId: number, strengths: number[], reference: Float32Array[]) {
    const spec = { channels: 3 as const, height: 64, width: 64, valueRange: [-1, 1] as const };
    const shape = { channels: 3, height: 64, width: 64, range: [-1, 1] as const };
    const items = this.g.db
      .prepare('SELECT a_output, b_output, a_setting, b_setting FROM study_items WHERE study_id = ? AND check_kind IS NULL')
      .all(studyId) as {
      a_output: number;
      b_output: number;
      a_setting: number;
      b_setting: number;
    }[];
    const outputs = strengths.map(() => new Set<number>());
    for (const it of items) {
      outputs[it.a_setting]!.add(it.a_output);
      outputs[it.b_setting]!.add(it.b_output);
    }
    const extractor = await createFeatureExtractor();
    try {
      const refFeatures = await extractor.features(reference, shape);
      const refPyramids = swdPyramids(reference, shape);
      const swdPer: number[] = [];
      const fdPer: number[] = [];
      for (const ids of outputs) {
        const imgs = await Promise.all([...ids].map((id) => readImage(this.g.objectPath(this.g.get(id)!.sha256!), spec)));
        swdPer.push(swd(imgs, refPyramids, shape, { patchesPerImage: 32, directions: 128, seed: 0 }).mean);
        fdPer.push(frechetDistance(await extractor.features(imgs, shape), refFeatures));
      }
      const neg = (v: number[]) => v.map((x) => -x);
      return { swd: swdPer, fd: fdPer, spearmanSwd: spearman(strengths, neg(swdPer)), spearmanFd: spearman(strengths, neg(fdPer)) };
    } finally {
      await extractor.dispose();
    }
  }

  /** The judgement rows as CSV (JSON-quoted values, a header line). */
  /**
   * RFC 4180 CSV (csv-stringify: quotes doubled, fields with commas, quotes or line breaks quoted), with
   * spreadsheet formulas guarded: a text cell starting with = + - @ or a tab/CR gets a leading apostrophe,
   * so an annotator name like "=HYPERLINK(…)" is shown as text, not run (OWASP's CSV injection advice).
   */
  csv(studyId: number): string {
    const rows = this.rows(studyId);
    const columns = Object.keys(rows[0] ?? { id: 0 });
    const guard = (v: string | number | null) => (typeof v === 'string' && /^[=+\-@\t\r]/.test(v) ? `'${v}` : (v ?? ''));
    return stringify(
      rows.map((r) => columns.map((c) => guard(r[c] ?? null))),
      { header: true, columns, record_delimiter: '\n' },
    );
  }

  /**
   * One row per judgement (undone ones included, flagged). The source is named by its original file
   * name, never its path: an exported study is shared, and must not say where anyone keeps files.
   */
  rows(studyId: number): Record<string, string | number | null>[] {
    const rows = this.g.db
      .prepare(
        `SELECT j.id, j.annotator, j.created_at, j.position, j.left_is_a, j.choice, j.undone, i.id AS item_id, i.a_output, i.b_output, i.a_setting, i.b_setting,
                COALESCE(o.source_name, i.source_path) AS source, i.check_kind
         FROM judgements j JOIN study_items i ON i.id = j.item_id LEFT JOIN outputs o ON o.id = i.a_output
         WHERE j.study_id = ? ORDER BY j.id`,
      )
      .all(studyId) as Record<string, string | number | null>[];
    return rows.map((r) => ({ ...r, source: basename(String(r['source'] ?? '')) }));
  }

  /** Each annotator's attention checks: repeats answered the same, obvious pairs answered right; flagged on any miss. */
  private annotatorChecks(rows: Record<string, string | number | null>[]) {
    return [...new Set(rows.map((r) => r['annotator'] as string))].map((name) => {
      const mine = rows.filter((r) => r['annotator'] === name);
      const repeats = mine.filter((r) => r['check_kind'] === 'repeat');
      const consistent = repeats.filter((r) => {
        const original = this.g.db.prepare('SELECT repeat_of FROM study_items WHERE id = ?').pluck().get(r['item_id']) as number;
        return mine.find((m) => m['item_id'] === original)?.['choice'] === r['choice'];
      }).length;
      const obvious = mine.filter((r) => r['check_kind'] === 'obvious');
      const passed = obvious.filter((r) => r['choice'] === 'a').length;
      const repeatConsistent = repeats.length ? consistent / repeats.length : null;
      const obviousPassed = obvious.length ? passed / obvious.length : null;
      return {
        name,
        judged: mine.length,
        repeatConsistent,
        obviousPassed,
        flagged: (repeatConsistent ?? 1) < 1 || (obviousPassed ?? 1) < 1,
      };
    });
  }

  /** Faithfulness studies: how often the human's choice is the result closer to the source (lower L2); ties left out. */
  private async l2Agreement(main: Record<string, string | number | null>[]): Promise<number | null> {
    let agree = 0;
    let counted = 0;
    for (const r of main) {
      if (r['choice'] === 'tie') continue;
      const [ra, rb] = [this.g.get(r['a_output'] as number), this.g.get(r['b_output'] as number)];
      if (!ra?.sha256 || !rb?.sha256) continue;
      const spec = { channels: 3 as const, height: 64, width: 64, valueRange: [-1, 1] as const };
      const [src, xa, xb] = await Promise.all([
        readImage(ra.sourcePath, spec),
        readImage(this.g.objectPath(ra.sha256), spec),
        readImage(this.g.objectPath(rb.sha256), spec),
      ]);
      const metricPrefersB = l2(xb, src) < l2(xa, src);
      if (metricPrefersB === (r['choice'] === 'b')) agree++;
      counted++;
    }
    return counted ? agree / counted : null;
  }

  async summary(studyId: number, reference?: Float32Array[]): Promise<StudySummary> {
    const s = this.study(studyId);
    const rows = this.rows(studyId).filter((r) => !r['undone']);
    const main = rows.filter((r) => !r['check_kind']);
    const first = main.filter((r) => r['a_setting'] === 0 && r['b_setting'] === 1);
    const wins = first.filter((r) => r['choice'] === 'b').length;
    const ties = first.filter((r) => r['choice'] === 'tie').length;
    const losses = first.filter((r) => r['choice'] === 'a').length;
    const ci = wilsonInterval(wins + ties / 2, first.length);
    const matrix = preferenceMatrix(
      main.map((r) => ({ a: r['a_setting'] as number, b: r['b_setting'] as number, choice: r['choice'] as string })),
      s.settings.length,
    );
    const strengths = bradleyTerry(matrix);
    const perSetting = s.settings.map((f, i) => {
      const won = matrix[i]!.reduce((a, b) => a + b, 0);
      const games = matrix.reduce((a, row, j) => a + row[i]! + matrix[i]![j]!, 0);
      const w = wilsonInterval(won, games);
      return { ...f, strength: strengths[i]!, games, rate: w.rate, low: w.low, high: w.high };
    });
    return {
      study: { id: s.id, name: s.name, question: s.question, seed: s.seed, a: s.a, b: s.b },
      judgements: rows.length,
      annotators: this.annotatorChecks(rows),
      winRateB: { wins, ties, losses, rate: ci.rate, low: ci.low, high: ci.high },
      bradleyTerry: { a: strengths[0]!, b: strengths[1]! },
      settings: perSetting,
      fleissKappa: itemAgreement(main.map((r) => ({ item: r['item_id'] as number, choice: r['choice'] as string }))),
      agreementWithL2: s.question === 'faithfulness' && main.length ? await this.l2Agreement(main) : null,
      metricAgreement: reference?.length
        ? await this.metricAgreement(
            studyId,
            perSetting.map((p) => p.strength),
            reference,
          )
        : null,
    };
  }
}

/** The flat grey image of the obvious attention check. */
export async function obviousImage(path: string): Promise<void> {
  await writeFileAtomic(path, await encodePng(new Float32Array(3 * 64 * 64), { channels: 3, height: 64, width: 64, valueRange: [-1, 1] }));
}
