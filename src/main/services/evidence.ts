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
import { designComparison, f3, reading, resultsTable, spanText, type PairedDistances } from './evidence-report.js';
import { runSweep, type ReferenceCache, type SetRealism } from './sweep.js';
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
  /**
   * Target-domain images of other subjects (never paired with a source, e.g. the training split's): three draws as
   * large as the source set are measured against the reference as a translation is — what a real image scores when
   * it does not share the reference's subjects.
   */
  otherTargets?: string[] | undefined;
}

/** One discriminator design in the comparison: a label and its manifest. */
export interface DiscriminatorCandidate {
  name: string;
  manifest: string;
}

/** How much the set-level metrics move when only the seeds change (roughness: null without a ratio to take). */
export interface SeedNoise {
  swd: number;
  fd: number;
  roughness: number | null;
}

export interface EvidenceResult {
  rows: SweepRow[];
  /** each candidate's DG rows (w > 0), in the order given */
  candidateRows: { name: string; rows: SweepRow[] }[];
  noise: SeedNoise;
  markdownPath: string;
  files: string[];
}

/** Every k-th of a sorted list, so a subset spans the list (emoji are sorted by code point, i.e. category). */
export function spreadSubset<T>(items: T[], limit: number): T[] {
  if (limit <= 0 || limit >= items.length) return items;
  return Array.from({ length: limit }, (_, i) => items[Math.floor((i * items.length) / limit)]!);
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

/** Which sources, weights and settings an evidence run uses, checked before any work. */
interface EvidencePlan {
  chosen: string[];
  pairedCount: number;
  targetCount: number;
  weights: number[];
  gridT0: number;
  floorT0: number;
  gridWeight: number;
}

async function planEvidence(req: EvidenceRequest): Promise<EvidencePlan> {
  const targetFiles = await expandInputs(req.targets);
  const targetNames = new Set(targetFiles.map((f) => basename(f)));
  const paired = (await expandInputs(req.sources)).filter((f) => targetNames.has(basename(f)));
  if (paired.length === 0)
    throw new Error(`no source in ${req.sources.join(', ')} has a target of the same name in ${req.targets.join(', ')}`);
  const weights = [...new Set([0, ...req.weights])].sort((a, b) => a - b);
  if (weights.length < 2) throw new Error('the evidence compares DG with plain SDEdit: give at least one DG weight above 0');
  if (req.t0s.length === 0) throw new Error('give at least one t0');
  // the grid and the noise floor use settings of the sweep: the nearest ones to those asked for
  const nearest = (xs: number[], x: number) => xs.reduce((a, b) => (Math.abs(b - x) < Math.abs(a - x) ? b : a));
  return {
    chosen: spreadSubset(paired, req.limit),
    pairedCount: paired.length,
    targetCount: targetFiles.length,
    weights,
    gridT0: nearest(req.t0s, req.gridT0),
    floorT0: nearest(req.t0s, req.floorT0 ?? req.gridT0),
    gridWeight: nearest(
      weights.filter((w) => w > 0),
      req.gridWeight,
    ),
  };
}

/** What the main sweep leaves for the grid: the sources, true targets and the grid's two settings' outputs. */
interface GridInputs {
  sources: { file: string; data: Float32Array }[];
  truths: (Float32Array | null)[];
  spec: ImageSpec | null;
  keep: Map<string, Float32Array[]>;
}

/** The sweep every setting shares, options common to the main sweep, the noise floor and the designs. */
function sweepBase(req: EvidenceRequest, plan: EvidencePlan, referenceCache: ReferenceCache) {
  return {
    inputs: plan.chosen,
    reference: req.targets,
    modelManifest: req.modelManifest,
    executionProvider: req.executionProvider,
    threads: req.threads,
    referenceCache,
  };
}

/** The main t0 × w sweep, keeping per-image distances and the grid's outputs. */
async function mainSweep(
  req: EvidenceRequest,
  plan: EvidencePlan,
  referenceCache: ReferenceCache,
  onStage: (m: string) => void,
  signal: AbortSignal | undefined,
) {
  const distances: PairedDistances[] = [];
  const grid: GridInputs = { sources: [], truths: [], spec: null, keep: new Map() };
  const sweep = await runSweep(
    {
      ...sweepBase(req, plan, referenceCache),
      groundTruth: req.targets,
      t0s: req.t0s,
      weights: plan.weights,
      discriminatorManifest: req.discriminatorManifest,
      params: req.params,
      outDir: join(req.workDir, 'sweep'),
      others: req.otherTargets?.length ? { files: req.otherTargets } : undefined,
    },
    {
      onStage,
      onRow: (r) => onStage(`t0 = ${r.t0}, w = ${r.w}: SWD ${f3(r.swd)}, FD ${f3(r.fd)}, L2 to source ${f3(r.l2Source)}`),
      onOutputs: (s, { outputs, sources, truths, spec }) => {
        Object.assign(grid, { sources, truths, spec });
        distances.push({
          ...s,
          l2Truth: outputs.flatMap((o, i) => (truths[i] ? [l2(o, truths[i])] : [])),
          l2Source: outputs.map((o, i) => l2(o, sources[i]!.data)),
        });
        if (s.t0 === plan.gridT0 && (s.w === 0 || s.w === plan.gridWeight)) grid.keep.set(`w${s.w}`, outputs.slice(0, req.gridRows));
      },
    },
    signal,
  );
  return { sweep, distances, grid };
}

/**
 * The seed-noise floor of the set-level metrics: plain SDEdit at floorT0 again with other seeds,
 * the largest change of two reruns.
 */
async function seedNoiseFloor(
  req: EvidenceRequest,
  plan: EvidencePlan,
  first: SweepRow,
  referenceCache: ReferenceCache,
  onStage: (m: string) => void,
  signal: AbortSignal | undefined,
): Promise<SeedNoise> {
  const noise: SeedNoise = { swd: 0, fd: 0, roughness: null };
  for (const k of [1, 2]) {
    onStage(`noise floor ${k}/2: SDEdit at t0 = ${plan.floorT0} with other seeds`);
    const again = await runSweep(
      {
        ...sweepBase(req, plan, referenceCache),
        t0s: [plan.floorT0],
        weights: [0],
        params: { ...req.params, seed: ((req.params.seed ?? 0) + k * 1_000_003) % 2 ** 32 },
        outDir: join(req.workDir, `noise-${k}`),
        writeImages: false,
      },
      {},
      signal,
    );
    noise.swd = Math.max(noise.swd, Math.abs(again.rows[0]!.swd - first.swd));
    noise.fd = Math.max(noise.fd, Math.abs(again.rows[0]!.fd - first.fd));
    const [r, r0] = [again.rows[0]!.roughness, first.roughness];
    if (r !== null && r0 !== null) noise.roughness = Math.max(noise.roughness ?? 0, Math.abs(r - r0));
  }
  return noise;
}

/** The other discriminator designs, each swept at the same t0s, DG weights and seeds. */
async function candidateSweeps(
  req: EvidenceRequest,
  plan: EvidencePlan,
  referenceCache: ReferenceCache,
  onStage: (m: string) => void,
  signal: AbortSignal | undefined,
): Promise<{ name: string; rows: SweepRow[] }[]> {
  const out: { name: string; rows: SweepRow[] }[] = [];
  for (const [i, c] of (req.candidates ?? []).entries()) {
    onStage(`design ${i + 1}/${req.candidates!.length}: ${c.name}`);
    const res = await runSweep(
      {
        ...sweepBase(req, plan, referenceCache),
        t0s: req.t0s,
        weights: plan.weights.filter((w) => w > 0),
        discriminatorManifest: c.manifest,
        params: req.params,
        outDir: join(req.workDir, `design-${i + 1}`),
        writeImages: false,
      },
      { onRow: (r) => onStage(`${c.name}: t0 = ${r.t0}, w = ${r.w}: SWD ${f3(r.swd)}, FD ${f3(r.fd)}, L2 to source ${f3(r.l2Source)}`) },
      signal,
    );
    out.push({ name: c.name, rows: res.rows });
  }
  return out;
}

/** The sweep's tables and plots copied into the assets folder, and the grid drawn there; the files written. */
async function writeAssets(
  req: EvidenceRequest,
  plan: EvidencePlan,
  assets: string,
  plots: string[],
  grid: GridInputs,
): Promise<{ files: string[]; gridFile: string | null }> {
  const files: string[] = [];
  const copyTo = async (from: string, name: string) => {
    await copyFile(from, join(assets, name));
    files.push(join(assets, name));
  };
  await copyTo(join(req.workDir, 'sweep', 'results.csv'), 'results.csv');
  await copyTo(join(req.workDir, 'sweep', 'results.json'), 'results.json');
  for (const p of plots) await copyTo(p, basename(p));
  const sdedit = grid.keep.get('w0');
  const dg = grid.keep.get(`w${plan.gridWeight}`);
  if (!grid.spec || !sdedit || !dg) return { files, gridFile: null };
  const png = await renderGrid(
    sdedit.map((o, i) => ({ source: grid.sources[i]!.data, sdedit: o, dg: dg[i]!, truth: grid.truths[i] ?? null })),
    grid.spec,
    ['source', `SDEdit (t0 = ${plan.gridT0})`, `+ DG (w = ${plan.gridWeight})`, 'true target'],
  );
  const gridFile = join(assets, 'grid.png');
  await writeFileAtomic(gridFile, png);
  files.push(gridFile);
  return { files, gridFile };
}

/** The design-comparison section of results.md (empty without candidates). */
function designSection(designs: ReturnType<typeof designComparison> | null): string[] {
  if (!designs) return [];
  return [
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
  ];
}

interface EvidenceNumbers {
  rows: SweepRow[];
  distances: PairedDistances[];
  noise: SeedNoise;
  truths: SetRealism | null;
  others: SetRealism[];
  untranslated: SetRealism | null;
  plots: string[];
  gridFile: string | null;
  designs: ReturnType<typeof designComparison> | null;
  sweepSeconds: number;
}

/** The Setting's line on real target images of other subjects: each metric's range over the draws. */
function othersLine(others: SetRealism[]): string {
  const span = (k: 'swd' | 'fd' | 'kid' | 'roughness') => spanText(others.map((o) => o[k]));
  return (
    `- Real target images of other subjects (${others.length} random draws of ${others[0]!.images}, none sharing a reference image's name), measured as a translation is: ` +
    `SWD ${span('swd')}, FD ${span('fd')}, KID ${span('kid')}, roughness ${span('roughness')} — how real drawings score when their subjects are not the reference's. ` +
    'A translation shares its truth’s subject; FD and KID on these features reward that, so they can fall below this level without the images being more real.'
  );
}

/** results.md, written from the numbers. */
function evidenceMarkdown(req: EvidenceRequest, plan: EvidencePlan, assets: string, n: EvidenceNumbers): string {
  const rel = (p: string) => relative(req.docsDir, p);
  return [
    '# Results: does Discriminator Guidance help image-to-image translation?',
    '',
    `Written by \`npm run evidence\` (src/main/services/evidence.ts) on ${new Date().toISOString().slice(0, 10)}; regenerate, do not edit the numbers by hand.`,
    '',
    '## Setting',
    '',
    `- Score model: \`${rel(req.modelManifest)}\`; discriminator: \`${rel(req.discriminatorManifest)}\`.`,
    `- ${plan.chosen.length} held-out source images (of ${plan.pairedCount} with a true target), translated at every t0 × w with the same seeds; realism is measured against all ${plan.targetCount} held-out target images.`,
    `- Sampler: ${samplerLine(req.params)}; parameters given: \`${JSON.stringify(req.params)}\`. Sweep time ${Math.round(n.sweepSeconds)} s.`,
    ...(req.provenance ?? []).map((p) => `- ${p}`),
    '- Metrics (docs: src/main/engine/metrics.ts): SWD = sliced Wasserstein distance of Laplacian-pyramid patches (Karras 2018) to the target set; FD and KID on fixed random conv features (not comparable with Inception FID); L2 = RMS pixel distance in [-1, 1]; SSIM (Wang 2004). w = 0 is plain SDEdit.',
    `- Seed-noise floor (SDEdit at t0 = ${plan.floorT0} rerun twice with other seeds; the larger change): SWD ${f3(n.noise.swd)}, FD ${f3(n.noise.fd)}${n.noise.roughness === null ? '' : `, roughness ${f3(n.noise.roughness)}`}. Differences smaller than this are not evidence.`,
    ...(n.truths
      ? [
          `- The true targets of these ${n.truths.images} sources, measured as a translation is (among the reference images): SWD ${f3(n.truths.swd)}, FD ${f3(n.truths.fd)}, KID ${f3(n.truths.kid)}${n.truths.roughness === null ? '' : `, roughness ${f3(n.truths.roughness)}`} — what a perfect translation would score with this many images (FD and KID of a small set are biased upward).`,
        ]
      : []),
    ...(n.others.length ? [othersLine(n.others)] : []),
    ...(n.untranslated
      ? [
          `- The ${n.untranslated.images} sources themselves, untranslated, measured as a translation is (what doing nothing scores): SWD ${f3(n.untranslated.swd)}, FD ${f3(n.untranslated.fd)}, KID ${f3(n.untranslated.kid)}${n.untranslated.roughness === null ? '' : `, roughness ${f3(n.untranslated.roughness)}`}.`,
        ]
      : []),
    '',
    '## Table',
    '',
    resultsTable(n.rows, n.distances),
    '',
    '## Realism against faithfulness',
    '',
    ...n.plots.map((p) => `![${basename(p, '.png')}](${rel(join(assets, basename(p)))})`),
    '',
    ...(n.gridFile ? ['## Images', '', `![source, SDEdit, SDEdit + DG, true target](${rel(n.gridFile)})`, ''] : []),
    ...designSection(n.designs),
    ...(req.readingMarkdown ? ['## Reading', '', req.readingMarkdown.trim(), ''] : []),
    `## ${req.readingMarkdown ? 'Generated reading' : 'Reading'} (from the numbers above)`,
    '',
    ...reading(n.rows, n.distances, n.noise, n.others, n.untranslated),
    '',
  ].join('\n');
}

export async function runEvidence(
  req: EvidenceRequest,
  onStage: (m: string) => void = () => {},
  signal?: AbortSignal,
): Promise<EvidenceResult> {
  const assets = join(req.docsDir, req.assetsName ?? 'results');
  await mkdir(assets, { recursive: true });
  const plan = await planEvidence(req);
  const started = Date.now();
  // the held-out targets are read, featurized and decomposed once for every sweep below
  const referenceCache: ReferenceCache = new Map();
  const { sweep, distances, grid } = await mainSweep(req, plan, referenceCache, onStage, signal);
  const sweepSeconds = (Date.now() - started) / 1000;
  const first = sweep.rows.find((r) => r.t0 === plan.floorT0 && r.w === 0)!;
  const noise = await seedNoiseFloor(req, plan, first, referenceCache, onStage, signal);
  const candidateRows = await candidateSweeps(req, plan, referenceCache, onStage, signal);
  const designs = candidateRows.length
    ? designComparison(
        sweep.rows.filter((r) => r.w === 0),
        [{ name: req.discriminatorName ?? 'this discriminator', rows: sweep.rows.filter((r) => r.w > 0) }, ...candidateRows],
      )
    : null;
  const { files, gridFile } = await writeAssets(req, plan, assets, sweep.plots, grid);
  const md = evidenceMarkdown(req, plan, assets, {
    rows: sweep.rows,
    distances,
    noise,
    truths: sweep.truths,
    others: sweep.others,
    untranslated: sweep.untranslated,
    plots: sweep.plots,
    gridFile,
    designs,
    sweepSeconds,
  });
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
