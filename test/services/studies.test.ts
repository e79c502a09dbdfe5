import { join } from 'node:path';
import sharp from 'sharp';
import { parse as parseCsv } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { bradleyTerry, fleissKappa, itemAgreement, preferenceMatrix, wilsonInterval } from '../../src/main/engine/eval/study-stats.js';
import { Gallery } from '../../src/main/services/gallery.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { Studies } from '../../src/main/services/studies.js';
import { translateFiles } from '../../src/main/services/translate-files.js';
import { tempDir } from '../helpers/tmp.js';

describe('study statistics against hand-computed cases', () => {
  it('Spearman ρ: identical orders 1, reversed −1, ties get average ranks', async () => {
    const { spearman } = await import('../../src/main/services/studies.js');
    expect(spearman([1, 2, 3], [10, 20, 30])).toBeCloseTo(1, 12);
    expect(spearman([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    expect(spearman([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(0.8, 12);
  });
  it('Wilson interval of 8/10 is (0.490, 0.943)', () => {
    const w = wilsonInterval(8, 10);
    expect(w.low).toBeCloseTo(0.4902, 3);
    expect(w.high).toBeCloseTo(0.9433, 3);
  });
  it("Fleiss' κ of the classic 10 × 14 example is 0.210", () => {
    const table = [
      [0, 0, 0, 0, 14],
      [0, 2, 6, 4, 2],
      [0, 0, 3, 5, 6],
      [0, 3, 9, 2, 0],
      [2, 2, 8, 1, 1],
      [7, 7, 0, 0, 0],
      [3, 2, 6, 3, 0],
      [2, 5, 3, 2, 2],
      [6, 5, 2, 1, 0],
      [0, 2, 2, 3, 7],
    ];
    expect(fleissKappa(table)).toBeCloseTo(0.21, 2);
  });
  it('Bradley–Terry: 3 wins to 1 gives strengths in ratio 3', () => {
    const [a, b] = bradleyTerry([
      [0, 3],
      [1, 0],
    ]);
    expect(a! - b!).toBeCloseTo(Math.log(3), 6);
  });
  it('the preference matrix counts a win for the chosen side and half to each for a tie', () => {
    const wins = preferenceMatrix(
      [
        { a: 0, b: 1, choice: 'b' },
        { a: 1, b: 0, choice: 'b' },
        { a: 0, b: 2, choice: 'tie' },
        { a: 2, b: 1, choice: 'a' },
      ],
      3,
    );
    expect(wins).toEqual([
      [0, 1, 0.5],
      [1, 0, 0],
      [0.5, 1, 0],
    ]);
  });
  it('item agreement: perfect agreement on two items is κ 1; one item alone, or single ratings, give none', () => {
    const j = (item: number, choice: string) => ({ item, choice });
    expect(itemAgreement([j(1, 'a'), j(1, 'a'), j(2, 'b'), j(2, 'b')])).toBeCloseTo(1, 9);
    expect(itemAgreement([j(1, 'a'), j(1, 'b')])).toBeNull();
    expect(itemAgreement([j(1, 'a'), j(2, 'b')])).toBeNull();
  });
});

describe('pairwise studies', async () => {
  const dir = await tempDir();
  const g = await Gallery.open(join(dir, 'gallery'));
  const inputs: string[] = [];
  for (let i = 0; i < 6; i++) {
    const p = join(dir, `src${i}.png`);
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 30 * i, g: 100, b: 160 } } })
      .png()
      .toFile(p);
    inputs.push(p);
  }
  const d = bundledDefaults();
  for (const w of [0, 1]) {
    await translateFiles({
      inputs,
      outDir: join(dir, `out${w}`),
      params: { steps: 2, t0: 0.5, dgWeight: w, seed: 3 },
      modelManifest: d.scoreModel,
      discriminatorManifest: d.discriminator!,
      gallery: g,
    });
  }
  const studies = new Studies(g);
  const id = studies.create({
    name: 'dg vs sdedit',
    question: 'faithfulness',
    a: { t0: 0.5, dgWeight: 0 },
    b: { t0: 0.5, dgWeight: 1 },
    seed: 42,
  });

  it('pairs by source, adds attention checks, and randomizes order and sides reproducibly and balanced', () => {
    const p1 = studies.plan(id, 'ann');
    expect(p1).toEqual(studies.plan(id, 'ann'));
    expect(studies.plan(id, 'bob').map((x) => x.itemId)).not.toEqual(p1.map((x) => x.itemId));
    expect(p1).toHaveLength(6 + 2); // 6 pairs + one repeat + one obvious check
    // sides over many annotators: about half left-is-A (binomial, 800 draws: 4 s.e. = 0.07)
    const sides = Array.from({ length: 100 }, (_, k) => studies.plan(id, `a${k}`)).flat();
    expect(Math.abs(sides.filter((s) => s.leftIsA).length / sides.length - 0.5)).toBeLessThan(0.07);
  });

  it('records judgements by side, supports undo, and summarizes with checks flagged', async () => {
    for (const ann of ['ann', 'bob']) {
      for (let item = studies.next(id, ann); item; item = studies.next(id, ann)) {
        // ann always prefers B; bob prefers B except on checks where he fails the obvious one
        const wantB = !(ann === 'bob' && item.left === null);
        const seen =
          item.left === null || item.right === null ? ((item.left === null) === wantB ? 'left' : 'right') : item.leftIsA ? 'right' : 'left';
        studies.judge(id, ann, item.itemId, wantB || item.left === null || item.right === null ? seen : 'tie');
      }
    }
    expect(studies.undo(id, 'ann')).toBe(true);
    expect(studies.next(id, 'ann')).not.toBeNull();
    const rows = studies.rows(id);
    expect(rows.filter((r) => r['undone'] === 1)).toHaveLength(1);
    const s = await studies.summary(id);
    expect(s.winRateB.wins).toBeGreaterThanOrEqual(11);
    expect(s.annotators.find((a) => a.name === 'bob')!.flagged).toBe(true);
    expect(s.annotators.find((a) => a.name === 'ann')!.flagged).toBe(false);
    expect(s.fleissKappa).not.toBeNull();
    expect(s.agreementWithL2).not.toBeNull();
  });

  it('exports RFC 4180 CSV with spreadsheet formulas guarded (an annotator named "=HYPERLINK(…)" stays text)', () => {
    const evil = '=HYPERLINK("http://x","a, b")';
    const item = studies.next(id, evil)!;
    studies.judge(id, evil, item.itemId, 'tie');
    const csv = studies.csv(id);
    const parsed = parseCsv(csv, { columns: true }) as Record<string, string>[];
    expect(parsed).toHaveLength(studies.rows(id).length);
    const mine = parsed.filter((r) => r['annotator']!.includes('HYPERLINK'));
    expect(mine.map((r) => r['annotator'])).toEqual([`'${evil}`]); // guarded, comma and quotes kept by RFC 4180 quoting
    expect(csv).toContain(`"'=HYPERLINK(""http://x"",""a, b"")"`);
    expect(csv.split('\n')[0]).toMatch(/^id,annotator,/);
  });

  it('a grid of three settings compares every pair and ranks them by Bradley–Terry', async () => {
    await translateFiles({
      inputs,
      outDir: join(dir, 'out2'),
      params: { steps: 2, t0: 0.5, dgWeight: 2, seed: 3 },
      modelManifest: d.scoreModel,
      discriminatorManifest: d.discriminator!,
      gallery: g,
    });
    const grid = studies.create({ name: 'grid', question: 'realism', settings: [0, 1, 2].map((w) => ({ t0: 0.5, dgWeight: w })), seed: 7 });
    expect(studies.plan(grid, 'x').length).toBe(6 * 3 + 2 * 2); // 6 sources × 3 pairs + checks
    // this annotator always prefers the larger weight (and passes the checks)
    for (let item = studies.next(grid, 'x'); item; item = studies.next(grid, 'x')) {
      const row = g.db.prepare('SELECT a_setting, b_setting, check_kind FROM study_items WHERE id = ?').get(item.itemId) as {
        a_setting: number;
        b_setting: number;
        check_kind: string | null;
      };
      const wantA = row.check_kind === 'obvious' || row.a_setting > row.b_setting;
      studies.judge(grid, 'x', item.itemId, wantA === item.leftIsA ? 'left' : 'right');
    }
    const s = await studies.summary(grid);
    const strengths = s.settings.map((x) => x.strength);
    expect(strengths[0]!).toBeLessThan(strengths[1]!);
    expect(strengths[1]!).toBeLessThan(strengths[2]!);
    expect(s.settings[2]!.rate).toBe(1);
    expect(s.annotators[0]!.flagged).toBe(false);
    // with a reference set, every realism metric is ranked against the humans
    const { readImage } = await import('../../src/main/engine/io/image-io.js');
    const reference = await Promise.all(inputs.map((f) => readImage(f, { channels: 3, height: 64, width: 64, valueRange: [-1, 1] })));
    const withRef = await studies.summary(grid, reference);
    expect(withRef.metricAgreement!.swd).toHaveLength(3);
    expect(Math.abs(withRef.metricAgreement!.spearmanSwd)).toBeLessThanOrEqual(1);
    expect(Number.isFinite(withRef.metricAgreement!.spearmanFd)).toBe(true);
  });
});
