import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { SweepRow } from '../../src/shared/api.js';
import {
  designComparison,
  frontierGaps,
  pairedDifference,
  reading,
  resultsTable,
  sdeditRealismAt,
} from '../../src/main/services/evidence-report.js';
import { runEvidence, spreadSubset } from '../../src/main/services/evidence.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { tempDir } from '../helpers/tmp.js';

const row = (t0: number, w: number, l2Source: number, swd: number, fd = swd): SweepRow => ({
  t0,
  w,
  l2Source,
  psnrSource: 0,
  ssimSource: 0,
  roughness: 1,
  swd,
  fd,
  kid: 0,
  l2Truth: null,
  psnrTruth: null,
  ssimTruth: null,
  meanLogRatio: null,
  images: 4,
});

describe('evidence report arithmetic', () => {
  it('spreads a subset over the whole sorted list', () => {
    expect(spreadSubset([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 5)).toEqual([0, 2, 4, 6, 8]);
    expect(spreadSubset([1, 2], 0)).toEqual([1, 2]);
    expect(spreadSubset([1, 2], 5)).toEqual([1, 2]);
  });

  it('paired difference: mean and standard error of b − a', () => {
    const d = pairedDifference([1, 2, 3, 4], [1.5, 2.5, 3.0, 5.0]);
    // differences 0.5, 0.5, 0, 1: mean 0.5, sample variance 1/6, s.e. sqrt(1/24)
    expect(d.mean).toBeCloseTo(0.5, 12);
    expect(d.se).toBeCloseTo(Math.sqrt(1 / 24), 12);
    expect(() => pairedDifference([1], [1, 2])).toThrow(/equal/);
  });

  it('interpolates the SDEdit curve and never extrapolates', () => {
    const curve = [
      { faithfulness: 0.1, realism: 10 },
      { faithfulness: 0.3, realism: 6 },
      { faithfulness: 0.2, realism: 8 },
    ];
    expect(sdeditRealismAt(curve, 0.25)).toBeCloseTo(7, 12);
    expect(sdeditRealismAt(curve, 0.1)).toBeCloseTo(10, 12);
    expect(sdeditRealismAt(curve, 0.35)).toBeNull();
    expect(sdeditRealismAt(curve, 0.05)).toBeNull();
  });

  it('frontier gaps: a DG point below the SDEdit line is negative, one above positive', () => {
    // SDEdit: realism falls linearly from 10 to 6 as L2 to source rises from 0.1 to 0.3
    const rows = [row(0.2, 0, 0.1, 10), row(0.5, 0, 0.3, 6), row(0.2, 2, 0.2, 7), row(0.5, 2, 0.25, 8), row(0.5, 4, 0.5, 1)];
    const gaps = frontierGaps(rows, 'swd');
    expect(gaps[0]!.gap).toBeCloseTo(-1, 12); // SDEdit at 0.2 is 8
    expect(gaps[1]!.gap).toBeCloseTo(1, 12); // SDEdit at 0.25 is 7
    expect(gaps[2]!.gap).toBeNull(); // beyond the SDEdit range
  });

  it('design comparison: per t0 the weight furthest below the SDEdit frontier by FD, ranked over the band', () => {
    // SDEdit: FD falls linearly from 10 to 6 as L2 to source rises from 0.1 to 0.3
    const sdedit = [row(0.2, 0, 0.1, 10), row(0.5, 0, 0.3, 6)];
    const a = [row(0.5, 1, 0.2, 7), row(0.5, 2, 0.25, 5), row(0.2, 1, 0.5, 1)];
    const b = [row(0.5, 1, 0.15, 9.9)];
    const { table, ranking } = designComparison(sdedit, [
      { name: 'A', rows: a },
      { name: 'B', rows: b },
    ]);
    // A at t0 0.5: w 1 is (7 − 8)/8 = −12.5 %, w 2 is (5 − 7)/7 = −28.6 %: w 2 wins
    expect(table).toContain('| A | 0.5 | 2 | −28.6 % | −28.6 % | 0.3 → 0.25 |');
    // A at t0 0.2 lies beyond the SDEdit curve: no gap, said so
    expect(table).toContain('| A | 0.2 | – | outside the SDEdit curve |');
    // B: SDEdit at 0.15 is 9, B is 10 % worse
    expect(table).toContain('| B | 0.5 | 1 | +10.0 % |');
    expect(ranking[0]!.meanFdGap).toBeCloseTo(-2 / 7, 12);
    expect(ranking[1]!.meanFdGap).toBeCloseTo(0.1, 12);
  });

  it('the reading says "no change" within the noise floor and "more realistic" beyond it', () => {
    const rows = [row(0.2, 0, 0.1, 10, 5), row(0.2, 1, 0.11, 9.95, 4.9), row(0.5, 0, 0.3, 6, 5), row(0.5, 2, 0.31, 4, 4)];
    const paired = [
      { t0: 0.5, w: 0, l2Truth: [0.5, 0.6, 0.7], l2Source: [0, 0, 0] },
      { t0: 0.5, w: 2, l2Truth: [0.4, 0.5, 0.61], l2Source: [0, 0, 0] },
    ];
    const lines = reading(rows, paired, { swd: 0.1, fd: 0.05 });
    expect(lines[0]).toMatch(/t0 = 0.2.*no realism change beyond the seed-noise floor/);
    expect(lines[1]).toMatch(/t0 = 0.5.*w = 2.*more realistic.*closer to the true target/);
    expect(resultsTable(rows, paired).split('\n')).toHaveLength(6);
    // against real images of other subjects: FD 4.9 and 4 are below both draws' (4.95, 5.5); SWD 10, 9.95 above both (6, 7)
    // the sources untranslated: SWD 9.97 is below 10 only — one setting further from the targets than doing nothing
    const withSources = reading(rows, paired, { swd: 0.1, fd: 0.05 }, [], { swd: 9.97, fd: 4.95, images: 3 });
    expect(withSources.at(-1)).toMatch(
      /The 3 sources, untranslated, score SWD 9\.97 and FD 4\.95: 1 of 4 settings have a higher SWD .* — t0 0\.2 w 0; 2 of 4 a higher FD\./,
    );
    const withOthers = reading(rows, paired, { swd: 0.1, fd: 0.05 }, [
      { swd: 6, fd: 5.5, images: 3 },
      { swd: 7, fd: 4.95, images: 3 },
    ]);
    expect(withOthers.slice(0, -1)).toEqual(lines);
    expect(withOthers.at(-1)).toMatch(
      /2 draws of 3\) score SWD 6–7 and FD 4\.95–5\.5: 2 of 4 settings have a lower FD.* 2 of 4 have a higher SWD/,
    );
    expect(resultsTable(rows, paired)).toMatch(/\| 0.5 \| 2 \|.*−0\.0967 ± 0\.00333/);
  });
});

describe('npm run evidence on the bundled toy models', async () => {
  const dir = await tempDir();
  const [src, tgt] = [join(dir, 'src'), join(dir, 'tgt')];
  for (const d of [src, tgt]) await mkdir(d);
  for (let i = 0; i < 4; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 40 * i, g: 90, b: 200 } } })
      .png()
      .toFile(join(src, `e${i}.png`));
    // targets: warm colours with a little grain (a roughness ratio to take)
    const grain = Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, k) => [230, 120 + 20 * i, 60][k % 3]! + ((k * 7919) % 13) - 6));
    await sharp(grain, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toFile(join(tgt, `e${i}.png`));
  }
  await sharp({ create: { width: 64, height: 64, channels: 3, background: '#00ff00' } })
    .png()
    .toFile(join(src, 'unpaired.png'));
  // target-domain images of other subjects: two new ones, and one named as a reference image is (left out)
  const other = join(dir, 'other');
  await mkdir(other);
  for (const [name, r] of [
    ['o0.png', 200],
    ['o1.png', 250],
    ['e0.png', 0],
  ] as const)
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r, g: 130, b: 70 } } })
      .png()
      .toFile(join(other, name));

  it('writes results.md with the table, plots, grid and reading', async () => {
    const d = bundledDefaults();
    const docs = join(dir, 'docs');
    const res = await runEvidence({
      sources: [src],
      targets: [tgt],
      modelManifest: d.scoreModel,
      discriminatorManifest: d.discriminator!,
      t0s: [0.3, 0.6],
      weights: [1],
      limit: 3,
      params: { steps: 3, sampler: 'euler', batchSize: 2 },
      docsDir: docs,
      workDir: join(dir, 'work'),
      gridT0: 0.6,
      gridWeight: 1,
      gridRows: 2,
      floorT0: 0.3,
      discriminatorName: 'toy',
      candidates: [{ name: 'toy again', manifest: d.discriminator! }],
      readingMarkdown: 'Hand-written: *the toy cannot show a gain.*',
      otherTargets: [other],
    });
    // the same discriminator as a second design gives the same DG rows (same seeds)
    expect(res.candidateRows[0]!.rows.map((r) => r.fd)).toEqual(res.rows.filter((r) => r.w > 0).map((r) => r.fd));
    // w = 0 is always added; the unpaired source is left out; limit 3 of 4 pairs
    expect(res.rows.map((r) => `${r.t0}/${r.w}`)).toEqual(['0.3/0', '0.3/1', '0.6/0', '0.6/1']);
    expect(res.rows.every((r) => r.images === 3 && r.l2Truth !== null)).toBe(true);
    expect(res.noise.swd).toBeGreaterThanOrEqual(0);
    // the floor covers roughness too: only the seeds changed, and the toy's outputs are grainy, so it moves
    expect(res.noise.roughness).toBeGreaterThan(0);
    const md = await readFile(res.markdownPath, 'utf8');
    expect(md).toMatch(/\| 0\.6 \| 1 \|/);
    // the floor where it was asked for, not at the grid's t0
    expect(md).toMatch(/Seed-noise floor \(SDEdit at t0 = 0\.3 rerun twice.*, roughness [\d.]+\. Differences/);
    // what a perfect translation of these sources would score: their true targets, measured the same way
    expect(md).toMatch(/- The true targets of these 3 sources, measured as a translation is .*: SWD [\d.]+, FD [\d.]+, KID [-\d.e]+/);
    expect(md).toContain('![source, SDEdit, SDEdit + DG, true target](results/grid.png)');
    expect(md).toMatch(
      /- The 3 sources themselves, untranslated, measured as a translation is \(what doing nothing scores\): SWD [\d.]+, FD [\d.]+/,
    );
    // real targets of other subjects: 3 draws of min(3 sources, 2 in the pool) = 2 — the same two each time
    expect(md).toMatch(/- Real target images of other subjects \(3 random draws of 2, .*: SWD [\d.]+–[\d.]+, FD ([\d.]+)–\1, KID/);
    expect(md).toMatch(/- Real target images of other subjects \(3 draws of 2\) score SWD .*settings have a lower FD than every draw/);
    expect(md).toMatch(/\*\*t0 = 0.6\*\*: best DG weight by SWD is w = 1/);
    expect(md).toMatch(/## Discriminator designs[\s\S]*\| toy \| 0\.6 \|[\s\S]*\| toy again \| 0\.6 \|/);
    expect(md).toMatch(/## Reading\n\nHand-written: \*the toy cannot show a gain\.\*\n\n## Generated reading/);
    const grid = await sharp(join(docs, 'results', 'grid.png')).metadata();
    // 4 columns of 128 px + 5 gaps of 4; header 28 + 2 rows of 128 + gaps
    expect([grid.width, grid.height]).toEqual([4 * 128 + 20, 28 + 2 * 132 + 4]);
    for (const f of ['results.csv', 'results.json', 'frontier-swd.png', 'frontier-fd.png'])
      expect(existsSync(join(docs, 'results', f))).toBe(true);
  }, 120_000);

  it('names the folders when no source has a paired target, and needs a DG weight above 0', async () => {
    const request = (over: Partial<Parameters<typeof runEvidence>[0]>) =>
      runEvidence({
        sources: [src],
        targets: [tgt],
        modelManifest: bundledDefaults().scoreModel,
        discriminatorManifest: bundledDefaults().discriminator!,
        t0s: [0.5],
        weights: [1],
        limit: 0,
        params: {},
        docsDir: join(dir, 'docs2'),
        workDir: join(dir, 'work2'),
        gridT0: 0.5,
        gridWeight: 1,
        gridRows: 1,
        ...over,
      });
    await expect(request({ sources: [join(src, 'unpaired.png')] })).rejects.toThrow(
      /no source in .*unpaired\.png has a target of the same name in .*tgt/,
    );
    await expect(request({ weights: [0] })).rejects.toThrow(/at least one DG weight above 0/);
  });
});
