/**
 * The evidence report: does DG lift the realism–faithfulness curve over plain SDEdit?
 * A t0 × w sweep on held-out source images (w = 0 is plain SDEdit), realism against the
 * held-out target set, faithfulness to the source, paired distance to the true target, a
 * seed-noise floor for the set-level metrics, a frontier plot, an image grid, and a reading
 * written from the numbers (`docs/results.md`, `npm run evidence`).
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import type { SweepRow } from '../../shared/api.js';
import { SAMPLER_LABELS, TranslateParamsSchema, type TranslateParamsInput } from '../../shared/params.js';
import { imageGrid, writeFileAtomic, type ImageSpec } from '../engine/io/image-io.js';
import { l2 } from '../engine/eval/metrics.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { runSweep, type ReferenceCache } from './sweep.js';
import { expandInputs } from './translate-files.js';

export interface EvidenceRequest {
  /** held-out source images (a folder or files) */
  sources: string[];
  /** held-out target images: the realism reference, and the paired truth (same file names) */
  targets: string[];
  modelManifest: string;
  discriminatorManifest: string;
  t0s: number[];
  weights: number[];
  /** how many sources to translate (spread evenly over the sorted list); 0: all */
  limit: number;
  params: TranslateParamsInput;
  /** where results.md goes; its pictures and tables go to `<docsDir>/<assetsName>/` */
  docsDir: string;
  assetsName?: string;
  /** where every translated image is kept (not committed) */
  workDir: string;
  /** the grid's setting: SDEdit at gridT0 against DG at (gridT0, gridWeight) */
  gridT0: number;
  gridWeight: number;
  gridRows: number;
  /** the t0 at which plain SDEdit is rerun with other seeds for the seed-noise floor (default: gridT0) */
  floorT0?: number | undefined;
  executionProvider?: ExecutionProvider | undefined;
  threads?: number | undefined;
  /** free text for the provenance lines (machine, command) */
  provenance?: string[];
  /**
   * Other discriminator designs to compare with the main one at the same t0s, weights and seeds
   * (the design-comparison table); plain SDEdit is shared with the main sweep.
   */
  candidates?: DiscriminatorCandidate[];
  /** the main discriminator's label in that table */
  discriminatorName?: string;
  /** a hand-written reading (markdown), placed before the generated one */
  readingMarkdown?: string;
}

/** One discriminator design in the comparison: a label and its manifest. */
export interface DiscriminatorCandidate {
  name: string;
  manifest: string;
}

/** Per-image paired distances of one setting, in source order. */
export interface PairedDistances {
  t0: number;
  w: number;
  l2Truth: number[];
  l2Source: number[];
}

export interface EvidenceResult {
  rows: SweepRow[];
  /** each candidate's DG rows (w > 0), in the order given */
  candidateRows: { name: string; rows: SweepRow[] }[];
  noise: { swd: number; fd: number };
  markdownPath: string;
  files: string[];
}

/** Every k-th of a sorted list, so a subset spans the list (emoji are sorted by code point, i.e. category). */
export function spreadSubset<T>(items: T[], limit: number): T[] {
  if (limit <= 0 || limit >= items.length) return items;
  return Array.from({ length: limit }, (_, i) => items[Math.floor((i * items.length) / limit)]!);
}

/** Mean and standard error of paired differences b − a. */
export function pairedDifference(a: number[], b: number[]): { mean: number; se: number; n: number } {
  if (a.length !== b.length || a.length === 0) throw new Error('paired difference needs two equal, non-empty lists');
  const d = a.map((v, i) => b[i]! - v);
  const n = d.length;
  const mean = d.reduce((s, v) => s + v, 0) / n;
  const variance = n > 1 ? d.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, se: Math.sqrt(variance / n), n };
}

/**
 * The plain-SDEdit curve's realism at a given faithfulness: linear interpolation between the
 * SDEdit points (sorted by faithfulness); null outside their range (no extrapolation).
 */
export function sdeditRealismAt(curve: { faithfulness: number; realism: number }[], faithfulness: number): number | null {
  const pts = [...curve].sort((a, b) => a.faithfulness - b.faithfulness);
  for (let i = 0; i + 1 < pts.length; i++) {
    const [a, b] = [pts[i]!, pts[i + 1]!];
    if (faithfulness >= a.faithfulness && faithfulness <= b.faithfulness) {
      const f = b.faithfulness === a.faithfulness ? 0 : (faithfulness - a.faithfulness) / (b.faithfulness - a.faithfulness);
      return a.realism + f * (b.realism - a.realism);
    }
  }
  return pts.length === 1 && pts[0]!.faithfulness === faithfulness ? pts[0]!.realism : null;
}

/**
 * How far each DG point lies below the SDEdit curve (realism metric, lower is better): its
 * realism minus SDEdit's at the same L2 to the source. Negative: DG lifts the curve there.
 */
export function frontierGaps(rows: SweepRow[], metric: 'swd' | 'fd'): { t0: number; w: number; gap: number | null }[] {
  const curve = rows.filter((r) => r.w === 0).map((r) => ({ faithfulness: r.l2Source, realism: r[metric] }));
  return rows
    .filter((r) => r.w > 0)
    .map((r) => {
      const sdedit = sdeditRealismAt(curve, r.l2Source);
      return { t0: r.t0, w: r.w, gap: sdedit === null ? null : r[metric] - sdedit };
    });
}

const f3 = (v: number | null) => (v === null || !Number.isFinite(v) ? '–' : Number(v.toPrecision(3)).toString());
const signed = (v: number) => (v >= 0 ? '+' : '−') + f3(Math.abs(v));

/**
 * The design comparison: for each discriminator and t0, the DG weight that lies furthest below
 * the SDEdit frontier by FD (realism at equal L2 to the source), with its FD and SWD gaps as
 * fractions of SDEdit's value there (−0.2: 20 % lower than SDEdit at the same faithfulness), and
 * the mean FD gap over the t0s in `band` — the number the designs are ranked by.
 */
export function designComparison(
  sdedit: SweepRow[],
  designs: { name: string; rows: SweepRow[] }[],
  band: [number, number] = [0.4, 0.6],
): { table: string; ranking: { name: string; meanFdGap: number | null }[]; band: [number, number] } {
  const curveOf = (metric: 'swd' | 'fd') => sdedit.map((r) => ({ faithfulness: r.l2Source, realism: r[metric] }));
  const curves = { swd: curveOf('swd'), fd: curveOf('fd') };
  const relGap = (r: SweepRow, metric: 'swd' | 'fd') => {
    const s = sdeditRealismAt(curves[metric], r.l2Source);
    return s === null || s === 0 ? null : (r[metric] - s) / s;
  };
  const pct = (v: number | null) => (v === null ? '–' : `${v >= 0 ? '+' : '−'}${Math.abs(100 * v).toFixed(1)} %`);
  const lines = ['| design | t0 | best w (by FD gap) | FD gap | SWD gap | L2 to source (SDEdit → DG) |', '|' + ' --- |'.repeat(6)];
  const ranking: { name: string; meanFdGap: number | null }[] = [];
  for (const d of designs) {
    const inBand: number[] = [];
    for (const t0 of [...new Set(d.rows.map((r) => r.t0))].sort((a, b) => a - b)) {
      const scored = d.rows.filter((r) => r.t0 === t0 && r.w > 0).map((r) => ({ r, fd: relGap(r, 'fd') }));
      const valid = scored.filter((x) => x.fd !== null);
      const base = sdedit.find((r) => r.t0 === t0);
      if (valid.length === 0) {
        lines.push(`| ${d.name} | ${t0} | – | outside the SDEdit curve | – | – |`);
        continue;
      }
      const best = valid.reduce((a, b) => (b.fd! < a.fd! ? b : a));
      if (t0 >= band[0] && t0 <= band[1]) inBand.push(best.fd!);
      lines.push(
        `| ${d.name} | ${t0} | ${best.r.w} | ${pct(best.fd)} | ${pct(relGap(best.r, 'swd'))} | ${base ? f3(base.l2Source) : '–'} → ${f3(best.r.l2Source)} |`,
      );
    }
    ranking.push({ name: d.name, meanFdGap: inBand.length ? inBand.reduce((a, b) => a + b, 0) / inBand.length : null });
  }
  return { table: lines.join('\n'), ranking, band };
}

/** The results table: one row per setting, with the paired change of L2 to the truth against SDEdit at the same t0. */
export function resultsTable(rows: SweepRow[], paired: PairedDistances[]): string {
  const head =
    '| t0 | w | SWD ↓ | FD ↓ | KID ↓ | roughness ÷ targets (1 = as smooth) | L2 to source ↓ | SSIM to source ↑ | L2 to truth ↓ | Δ L2 to truth vs SDEdit (± s.e.) | SSIM to truth ↑ |';
  const lines = [head, '|' + ' --- |'.repeat(11)];
  for (const r of rows) {
    const base = paired.find((p) => p.t0 === r.t0 && p.w === 0);
    const mine = paired.find((p) => p.t0 === r.t0 && p.w === r.w);
    let delta = '–';
    if (r.w > 0 && base && mine && base.l2Truth.length) {
      const d = pairedDifference(base.l2Truth, mine.l2Truth);
      delta = `${signed(d.mean)} ± ${f3(d.se)}`;
    }
    lines.push(
      `| ${r.t0} | ${r.w} | ${f3(r.swd)} | ${f3(r.fd)} | ${f3(r.kid)} | ${f3(r.roughness)} | ${f3(r.l2Source)} | ${f3(r.ssimSource)} | ${f3(r.l2Truth)} | ${delta} | ${f3(r.ssimTruth)} |`,
    );
  }
  return lines.join('\n');
}

/**
 * The reading, written from the numbers: at each t0, the DG weight with the best realism
 * against SDEdit, whether the change is above the seed-noise floor, what it costs in
 * faithfulness, and whether DG points lie below the SDEdit frontier.
 */
export function reading(rows: SweepRow[], paired: PairedDistances[], noise: { swd: number; fd: number }): string[] {
  const out: string[] = [];
  const t0s = [...new Set(rows.map((r) => r.t0))].sort((a, b) => a - b);
  for (const t0 of t0s) {
    const base = rows.find((r) => r.t0 === t0 && r.w === 0);
    const dg = rows.filter((r) => r.t0 === t0 && r.w > 0);
    if (!base || dg.length === 0) continue;
    const best = dg.reduce((a, b) => (b.swd < a.swd ? b : a));
    const dSwd = best.swd - base.swd;
    const dFd = best.fd - base.fd;
    const verdict =
      dSwd < -noise.swd && dFd < 0
        ? 'more realistic (SWD and FD both lower, SWD beyond the seed-noise floor)'
        : dSwd < -noise.swd
          ? 'lower SWD beyond the noise floor, but FD does not agree'
          : Math.abs(dSwd) <= noise.swd
            ? 'no realism change beyond the seed-noise floor'
            : 'less realistic by SWD';
    let truth = '';
    const pb = paired.find((p) => p.t0 === t0 && p.w === 0);
    const pd = paired.find((p) => p.t0 === t0 && p.w === best.w);
    if (pb && pd && pb.l2Truth.length) {
      const d = pairedDifference(pb.l2Truth, pd.l2Truth);
      const sig = Math.abs(d.mean) > 2 * d.se ? (d.mean < 0 ? 'closer to' : 'further from') : 'no clear change in distance to';
      truth = `; ${sig} the true target (Δ L2 ${signed(d.mean)} ± ${f3(d.se)}, n = ${d.n})`;
    }
    out.push(
      `- **t0 = ${t0}**: best DG weight by SWD is w = ${best.w}: SWD ${f3(base.swd)} → ${f3(best.swd)} (${signed(dSwd)}), ` +
        `FD ${f3(base.fd)} → ${f3(best.fd)} (${signed(dFd)}), L2 to source ${f3(base.l2Source)} → ${f3(best.l2Source)} — ${verdict}${truth}.`,
    );
  }
  for (const metric of ['swd', 'fd'] as const) {
    const gaps = frontierGaps(rows, metric).filter((g) => g.gap !== null);
    const floor = noise[metric];
    const below = gaps.filter((g) => g.gap! < -floor);
    const above = gaps.filter((g) => g.gap! > floor);
    const best = below.length ? below.reduce((a, b) => (b.gap! < a.gap! ? b : a)) : null;
    if (gaps.length)
      out.push(
        `- Against the SDEdit frontier (${metric.toUpperCase()} at equal L2 to the source, interpolated between t0 values): ` +
          `${below.length} of ${gaps.length} DG settings lie below it by more than the noise floor (${f3(floor)}), ${above.length} above it` +
          (best ? ` (best: t0 = ${best.t0}, w = ${best.w})` : '') +
          '.',
      );
  }
  return out;
}

/** Four columns — source | SDEdit | SDEdit + DG | true target — one row per image, 2× nearest, with a header. */
export async function renderGrid(
  rows: { source: Float32Array; sdedit: Float32Array; dg: Float32Array; truth: Float32Array | null }[],
  spec: ImageSpec,
  headers: [string, string, string, string],
): Promise<Buffer> {
  return imageGrid(
    rows.map((r) => [r.source, r.sdedit, r.dg, r.truth]),
    spec,
    headers,
  );
}

export async function runEvidence(
  req: EvidenceRequest,
  onStage: (m: string) => void = () => {},
  signal?: AbortSignal,
): Promise<EvidenceResult> {
  const assets = join(req.docsDir, req.assetsName ?? 'results');
  await mkdir(assets, { recursive: true });
  const targetFiles = await expandInputs(req.targets);
  const targetNames = new Set(targetFiles.map((f) => basename(f)));
  const paired = (await expandInputs(req.sources)).filter((f) => targetNames.has(basename(f)));
  if (paired.length === 0)
    throw new Error(`no source in ${req.sources.join(', ')} has a target of the same name in ${req.targets.join(', ')}`);
  const chosen = spreadSubset(paired, req.limit);
  const weights = [...new Set([0, ...req.weights])].sort((a, b) => a - b);
  if (weights.length < 2) throw new Error('the evidence compares DG with plain SDEdit: give at least one DG weight above 0');
  if (req.t0s.length === 0) throw new Error('give at least one t0');
  // the grid and the noise floor use settings of the sweep: the nearest ones to those asked for
  const nearest = (xs: number[], x: number) => xs.reduce((a, b) => (Math.abs(b - x) < Math.abs(a - x) ? b : a));
  const gridT0 = nearest(req.t0s, req.gridT0);
  const floorT0 = nearest(req.t0s, req.floorT0 ?? req.gridT0);
  const gridWeight = nearest(
    weights.filter((w) => w > 0),
    req.gridWeight,
  );
  const distances: PairedDistances[] = [];
  const keep = new Map<string, Float32Array[]>();
  let sourcesData: { file: string; data: Float32Array }[] = [];
  let spec: ImageSpec | null = null;
  let truthList: (Float32Array | null)[] = [];
  const started = Date.now();
  // the held-out targets are read, featurized and decomposed once for every sweep below
  const referenceCache: ReferenceCache = new Map();
  const sweep = await runSweep(
    {
      inputs: chosen,
      reference: req.targets,
      groundTruth: req.targets,
      t0s: req.t0s,
      weights,
      modelManifest: req.modelManifest,
      discriminatorManifest: req.discriminatorManifest,
      params: req.params,
      outDir: join(req.workDir, 'sweep'),
      executionProvider: req.executionProvider,
      threads: req.threads,
      referenceCache,
    },
    {
      onStage,
      onRow: (r) => onStage(`t0 = ${r.t0}, w = ${r.w}: SWD ${f3(r.swd)}, FD ${f3(r.fd)}, L2 to source ${f3(r.l2Source)}`),
      onOutputs: (s, { outputs, sources, truths, spec: sp }) => {
        sourcesData = sources;
        truthList = truths;
        spec = sp;
        distances.push({
          ...s,
          l2Truth: outputs.flatMap((o, i) => (truths[i] ? [l2(o, truths[i])] : [])),
          l2Source: outputs.map((o, i) => l2(o, sources[i]!.data)),
        });
        if (s.t0 === gridT0 && (s.w === 0 || s.w === gridWeight)) keep.set(`w${s.w}`, outputs.slice(0, req.gridRows));
      },
    },
    signal,
  );
  const sweepSeconds = (Date.now() - started) / 1000;
  // the seed-noise floor of the set-level metrics: plain SDEdit again with other seeds, the
  // largest change of two reruns
  const first = sweep.rows.find((r) => r.t0 === floorT0 && r.w === 0)!;
  const noise = { swd: 0, fd: 0 };
  for (const k of [1, 2]) {
    onStage(`noise floor ${k}/2: SDEdit at t0 = ${floorT0} with other seeds`);
    const again = await runSweep(
      {
        inputs: chosen,
        reference: req.targets,
        t0s: [floorT0],
        weights: [0],
        modelManifest: req.modelManifest,
        params: { ...req.params, seed: ((req.params.seed ?? 0) + k * 1_000_003) % 2 ** 32 },
        outDir: join(req.workDir, `noise-${k}`),
        writeImages: false,
        executionProvider: req.executionProvider,
        threads: req.threads,
        referenceCache,
      },
      {},
      signal,
    );
    noise.swd = Math.max(noise.swd, Math.abs(again.rows[0]!.swd - first.swd));
    noise.fd = Math.max(noise.fd, Math.abs(again.rows[0]!.fd - first.fd));
  }

  const candidateRows: { name: string; rows: SweepRow[] }[] = [];
  for (const [i, c] of (req.candidates ?? []).entries()) {
    onStage(`design ${i + 1}/${req.candidates!.length}: ${c.name}`);
    const res = await runSweep(
      {
        inputs: chosen,
        reference: req.targets,
        t0s: req.t0s,
        weights: weights.filter((w) => w > 0),
        modelManifest: req.modelManifest,
        discriminatorManifest: c.manifest,
        params: req.params,
        outDir: join(req.workDir, `design-${i + 1}`),
        writeImages: false,
        executionProvider: req.executionProvider,
        threads: req.threads,
        referenceCache,
      },
      { onRow: (r) => onStage(`${c.name}: t0 = ${r.t0}, w = ${r.w}: SWD ${f3(r.swd)}, FD ${f3(r.fd)}, L2 to source ${f3(r.l2Source)}`) },
      signal,
    );
    candidateRows.push({ name: c.name, rows: res.rows });
  }
  const designs = candidateRows.length
    ? designComparison(
        sweep.rows.filter((r) => r.w === 0),
        [{ name: req.discriminatorName ?? 'this discriminator', rows: sweep.rows.filter((r) => r.w > 0) }, ...candidateRows],
      )
    : null;

  const files: string[] = [];
  const copyTo = async (from: string, name: string) => {
    await copyFile(from, join(assets, name));
    files.push(join(assets, name));
  };
  await copyTo(join(req.workDir, 'sweep', 'results.csv'), 'results.csv');
  await copyTo(join(req.workDir, 'sweep', 'results.json'), 'results.json');
  for (const p of sweep.plots) await copyTo(p, basename(p));
  const sdedit = keep.get('w0');
  const dg = keep.get(`w${gridWeight}`);
  let gridFile: string | null = null;
  if (spec && sdedit && dg) {
    const s = spec as ImageSpec;
    const grid = await renderGrid(
      sdedit.map((o, i) => ({
        source: sourcesData[i]!.data,
        sdedit: o,
        dg: dg[i]!,
        truth: truthList[i] ?? null,
      })),
      s,
      ['source', `SDEdit (t0 = ${gridT0})`, `+ DG (w = ${gridWeight})`, 'true target'],
    );
    gridFile = join(assets, 'grid.png');
    await writeFileAtomic(gridFile, grid);
    files.push(gridFile);
  }
  const rel = (p: string) => relative(req.docsDir, p);
  const md = [
    '# Results: does Discriminator Guidance help image-to-image translation?',
    '',
    `Written by \`npm run evidence\` (src/main/services/evidence.ts) on ${new Date().toISOString().slice(0, 10)}; regenerate, do not edit the numbers by hand.`,
    '',
    '## Setting',
    '',
    `- Score model: \`${relative(req.docsDir, req.modelManifest)}\`; discriminator: \`${relative(req.docsDir, req.discriminatorManifest)}\`.`,
    `- ${chosen.length} held-out source images (of ${paired.length} with a true target), translated at every t0 × w with the same seeds; realism is measured against all ${targetFiles.length} held-out target images.`,
    `- Sampler: ${samplerLine(req.params)}; parameters given: \`${JSON.stringify(req.params)}\`. Sweep time ${Math.round(sweepSeconds)} s.`,
    ...(req.provenance ?? []).map((p) => `- ${p}`),
    '- Metrics (docs: src/main/engine/metrics.ts): SWD = sliced Wasserstein distance of Laplacian-pyramid patches (Karras 2018) to the target set; FD and KID on fixed random conv features (not comparable with Inception FID); L2 = RMS pixel distance in [-1, 1]; SSIM (Wang 2004). w = 0 is plain SDEdit.',
    `- Seed-noise floor (SDEdit at t0 = ${floorT0} rerun twice with other seeds; the larger change): SWD ${f3(noise.swd)}, FD ${f3(noise.fd)}. Differences smaller than this are not evidence.`,
    '',
    '## Table',
    '',
    resultsTable(sweep.rows, distances),
    '',
    '## Realism against faithfulness',
    '',
    ...sweep.plots.map((p) => `![${basename(p, '.png')}](${rel(join(assets, basename(p)))})`),
    '',
    ...(gridFile ? ['## Images', '', `![source, SDEdit, SDEdit + DG, true target](${rel(gridFile)})`, ''] : []),
    ...(designs
      ? [
          '## Discriminator designs',
          '',
          'The same sweep (same sources, seeds, t0s and weights) with each design guiding; plain SDEdit is shared. For each t0, the weight that lies furthest below the SDEdit frontier by FD; gaps are relative to SDEdit at the same L2 to the source (negative: more realistic at equal faithfulness).',
          '',
          designs.table,
          '',
          ...designs.ranking.map(
            (r) =>
              `- ${r.name}: mean FD gap over t0 in [${designs.band.join(', ')}] ${r.meanFdGap === null ? '–' : `${(100 * r.meanFdGap).toFixed(1)} %`}`,
          ),
          '',
        ]
      : []),
    ...(req.readingMarkdown ? ['## Reading', '', req.readingMarkdown.trim(), ''] : []),
    `## ${req.readingMarkdown ? 'Generated reading' : 'Reading'} (from the numbers above)`,
    '',
    ...reading(sweep.rows, distances, noise),
    '',
  ].join('\n');
  const markdownPath = join(req.docsDir, 'results.md');
  await writeFileAtomic(markdownPath, md);
  files.push(markdownPath);
  return { rows: sweep.rows, candidateRows, noise, markdownPath, files };
}

/** The sampler a run used, defaults filled in: "DPM-Solver++(2M), 8 steps, karras spacing". */
function samplerLine(params: TranslateParamsInput): string {
  const p = TranslateParamsSchema.parse(params);
  return `${SAMPLER_LABELS[p.sampler]}, ${p.steps} steps, ${p.spacing} spacing`;
}
