/**
 * Sweeps over t0 × DG weight: translate the same sources with the same noise at every
 * setting, then measure faithfulness to the source and realism to a target reference set
 * (paper Fig. 6), plus paired distances to ground truth when it exists.
 */
import { mkdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { SweepRow } from '../../shared/api.js';
import { TranslateParamsSchema, type TranslateParams, type TranslateParamsInput } from '../../shared/params.js';
import { createFeatureExtractor } from '../engine/models/features.js';
import { encodePng, readImage, writeFileAtomic, type ImageSpec } from '../engine/io/image-io.js';
import {
  frechetDistance,
  kernelInceptionDistance,
  l2,
  psnr,
  ssim,
  meanRoughness,
  swd,
  swdPyramids,
  type FeatureExtractor,
  type ImageShape,
  type SwdPyramids,
} from '../engine/eval/metrics.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { drawWithoutReplacement, Rng } from '../engine/rng.js';
import { frontierSpec, renderPng, type ReferenceLevel } from './plots.js';
import { openSweepTranslator, type SweepTranslator } from './sweep-translators.js';
import { expandInputs } from './translate-files.js';

export interface SweepRequest {
  inputs: string[];
  reference: string[];
  groundTruth?: string[] | undefined;
  t0s: number[];
  weights: number[];
  modelManifest: string;
  discriminatorManifest?: string | undefined;
  params?: TranslateParamsInput;
  outDir: string;
  features?: { onnx?: string; input?: string; output?: string } | undefined;
  writeImages?: boolean;
  executionProvider?: ExecutionProvider | undefined;
  threads?: number | undefined;
  /** a latent (Stable Diffusion-family) model's square image side (default: its dg-studio.json's, else 512) */
  imageSize?: number | undefined;
  /** reference sets already read and measured, shared by sweeps over the same reference (the evidence runs several) */
  referenceCache?: ReferenceCache | undefined;
  /**
   * Target-domain images of other subjects (files or folders), for the realism a real image scores when it does
   * not share the reference's subjects: `draws` random sets (default 3) as large as the sources are measured
   * against the reference as a translation is. Files with a reference image's name (its subject, in a paired
   * layout) are left out.
   */
  others?: { files: string[]; draws?: number | undefined } | undefined;
}

export type { SweepRow };

/** A reference set as the realism metrics need it (features and SWD pyramids), keyed by files, shape and feature extractor. */
export type ReferenceCache = Map<string, MeasuredReference>;
export interface MeasuredReference {
  features: Float64Array[];
  pyramids: SwdPyramids;
  /** the reference set's mean roughness, the denominator of the rows' roughness ratio */
  roughness: number;
}

export interface SettingOutputs {
  outputs: Float32Array[];
  sources: { file: string; data: Float32Array }[];
  truths: (Float32Array | null)[];
  spec: ImageSpec;
}

export const SWEEP_COLUMNS: (keyof SweepRow)[] = [
  't0',
  'w',
  'l2Source',
  'psnrSource',
  'ssimSource',
  'swd',
  'fd',
  'kid',
  'roughness',
  'l2Truth',
  'psnrTruth',
  'ssimTruth',
  'meanLogRatio',
  'images',
];

async function readAll(files: string[], spec: ImageSpec): Promise<{ file: string; data: Float32Array }[]> {
  return Promise.all(files.map(async (file) => ({ file, data: await readImage(file, spec) })));
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

export function toCsv(rows: SweepRow[]): string {
  const fmt = (v: unknown) => (v === null ? '' : typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v));
  return [SWEEP_COLUMNS.join(','), ...rows.map((r) => SWEEP_COLUMNS.map((c) => fmt(r[c])).join(','))].join('\n') + '\n';
}

/** A reference set read and measured once (features, SWD pyramids, roughness), from `cache` when given and known. */
export async function measureReference(
  files: string[],
  spec: ImageSpec,
  shape: ImageShape,
  extractor: FeatureExtractor,
  cache: ReferenceCache | undefined,
): Promise<MeasuredReference> {
  const key = JSON.stringify([extractor.name, shape, files]);
  const known = cache?.get(key);
  if (known) return known;
  const data = (await readAll(files, spec)).map((r) => r.data);
  const measured = {
    features: await extractor.features(data, shape),
    pyramids: swdPyramids(data, shape),
    roughness: meanRoughness(data, shape),
  };
  cache?.set(key, measured);
  return measured;
}

/** One setting's outputs for every source (clipped to the value range), the same seeds at every setting. */
async function translateSetting(
  translator: SweepTranslator,
  sources: { file: string; data: Float32Array }[],
  params: TranslateParams,
  signal: AbortSignal | undefined,
): Promise<Float32Array[]> {
  const outputs: Float32Array[] = [];
  for (let s = 0; s < sources.length; s += params.batchSize) {
    const part = sources.slice(s, s + params.batchSize);
    // the same seeds at every setting: differences come from t0 and w alone
    const seeds = part.map((_, i) => (params.seed + s + i) % 2 ** 32);
    outputs.push(
      ...(await translator.translate(
        part.map((p) => p.data),
        params,
        seeds,
        signal,
      )),
    );
  }
  return outputs;
}

/** A set's realism against the reference: SWD, FD and KID on the extractor's features, roughness ÷ the reference's. */
function realism(images: Float32Array[], feats: Float64Array[], shape: ImageShape, reference: MeasuredReference) {
  return {
    swd: swd(images, reference.pyramids, shape, { patchesPerImage: 32, directions: 256, seed: 0 }).mean,
    fd: frechetDistance(feats, reference.features),
    kid: kernelInceptionDistance(feats, reference.features),
    roughness: reference.roughness > 0 ? meanRoughness(images, shape) / reference.roughness : null,
  };
}

/** A setting's row: faithfulness to the sources, realism against the reference, the truths where paired. */
async function measureSetting(m: {
  t0: number;
  w: number;
  outputs: Float32Array[];
  sources: { file: string; data: Float32Array }[];
  truth: Map<string, Float32Array>;
  spec: ImageSpec;
  shape: ImageShape;
  extractor: FeatureExtractor;
  reference: Awaited<ReturnType<typeof measureReference>>;
  translator: SweepTranslator;
}): Promise<SweepRow> {
  const { t0, w, outputs, sources, truth, spec, shape, extractor, reference, translator } = m;
  const peak = spec.valueRange[1] - spec.valueRange[0];
  const feats = await extractor.features(outputs, shape);
  const paired = sources.map((s, i) => ({ truth: truth.get(basename(s.file)), out: outputs[i]! })).filter((p) => p.truth);
  const meanLogRatio = await translator.meanLogRatio(outputs);
  const row: SweepRow = {
    t0,
    w,
    l2Source: mean(outputs.map((o, i) => l2(o, sources[i]!.data))),
    psnrSource: mean(outputs.map((o, i) => psnr(o, sources[i]!.data, peak))),
    ssimSource: mean(outputs.map((o, i) => ssim(o, sources[i]!.data, shape))),
    ...realism(outputs, feats, shape, reference),
    l2Truth: paired.length ? mean(paired.map((p) => l2(p.out, p.truth!))) : null,
    psnrTruth: paired.length ? mean(paired.map((p) => psnr(p.out, p.truth!, peak))) : null,
    ssimTruth: paired.length ? mean(paired.map((p) => ssim(p.out, p.truth!, shape))) : null,
    meanLogRatio,
    images: outputs.length,
  };
  return row;
}

/** What the sweep measured besides its settings: the truths, real targets of other subjects, the sources untranslated. */
interface KnownLevels {
  truths: SetRealism | null;
  others: SetRealism[];
  untranslated: SetRealism | null;
}

/** The realism–faithfulness frontier plots (SWD and Fréchet distance against L2 to the source), the known levels dashed. */
async function writeFrontiers(rows: SweepRow[], known: KnownLevels, outDir: string, featuresName: string): Promise<string[]> {
  const plots: string[] = [];
  for (const [key, label] of [
    ['swd', 'SWD to target set ↓ (more realistic)'],
    ['fd', `Fréchet distance (${featuresName}) ↓`],
  ] as const) {
    const path = join(outDir, `frontier-${key}.png`);
    const points = rows.map((r) => ({ t0: r.t0, w: r.w, faithfulness: r.l2Source, realism: r[key] }));
    const { truths, others, untranslated } = known;
    const levels: ReferenceLevel[] = [
      ...(truths ? [{ realism: truths[key], label: `the ${truths.images} true targets themselves` }] : []),
      ...(others.length
        ? [
            {
              realism: mean(others.map((o) => o[key])),
              label: `real targets of other subjects (mean of ${others.length} × ${others[0]!.images})`,
            },
          ]
        : []),
      ...(untranslated ? [{ realism: untranslated[key], label: `the ${untranslated.images} sources, untranslated` }] : []),
    ];
    await writeFileAtomic(
      path,
      await renderPng(
        frontierSpec(points, { faithfulness: 'L2 to source ↓ (more faithful)', realism: label }, 'Realism vs faithfulness', levels),
      ),
    );
    plots.push(path);
  }
  return plots;
}

/**
 * The realism metrics of a set of images that are not translations, measured against the same reference as a
 * translation is. For the sources' own true targets: what a perfect translation of these sources would score — the
 * floor of the set-level metrics at this sample size (FD and KID are biased upward for a small set; the truths are
 * usually among the reference images, which lowers it a little). For the sources themselves: what doing nothing
 * scores. Null with fewer than two images.
 */
export interface SetRealism {
  swd: number;
  fd: number;
  kid: number;
  roughness: number | null;
  images: number;
}

export async function measureImages(
  images: Float32Array[],
  shape: ImageShape,
  extractor: FeatureExtractor,
  reference: MeasuredReference,
): Promise<SetRealism | null> {
  if (images.length < 2) return null;
  return { ...realism(images, await extractor.features(images, shape), shape, reference), images: images.length };
}

/**
 * Real target-domain images whose subjects are not the reference's, measured as a translation is: `draws` sets of
 * `size` drawn without replacement (seeds 1, 2, …) from `files`, less those named as a reference image is. Where
 * translations score below these, they are closer to the reference than real images of other subjects are — by
 * sharing its subjects, which FD and KID reward, not by being more real.
 */
async function measureOthers(
  files: string[],
  draws: number,
  size: number,
  referenceFiles: string[],
  spec: ImageSpec,
  shape: ImageShape,
  extractor: FeatureExtractor,
  reference: MeasuredReference,
): Promise<SetRealism[]> {
  const taken = new Set(referenceFiles.map((f) => basename(f)));
  const pool = files.filter((f) => !taken.has(basename(f)));
  if (pool.length < 2) throw new Error(`other targets: ${pool.length} image(s) whose names are not among the reference's; need at least 2`);
  const rows: SetRealism[] = [];
  for (let d = 1; d <= draws; d++) {
    const images = (await readAll(drawWithoutReplacement(pool, size, new Rng(d)), spec)).map((r) => r.data);
    rows.push((await measureImages(images, shape, extractor, reference))!); // two or more: never null
  }
  return rows;
}

export async function runSweep(
  req: SweepRequest,
  events: {
    onRow?(row: SweepRow): void;
    onStage?(message: string): void;
    /** every setting's outputs (clipped to the value range), in source order, with their sources and paired truths */
    onOutputs?(setting: { t0: number; w: number }, result: SettingOutputs): void;
  } = {},
  signal?: AbortSignal,
): Promise<{
  rows: SweepRow[];
  truths: SetRealism | null;
  others: SetRealism[];
  /** the sources themselves, untranslated, measured as a translation is (what doing nothing scores); null below two */
  untranslated: SetRealism | null;
  csv: string;
  json: string;
  plots: string[];
}> {
  const session = { executionProvider: req.executionProvider, threads: req.threads };
  if (!req.discriminatorManifest && req.weights.some((w) => w > 0))
    throw new Error('a sweep over DG weights > 0 needs a discriminator (--discriminator)');
  const translator = await openSweepTranslator(req, session);
  const spec = translator.spec;
  const extractor = await createFeatureExtractor({ ...req.features, ...session, channels: spec.channels }).catch(async (e: unknown) => {
    await translator.dispose();
    throw e;
  });
  try {
    const shape: ImageShape = { channels: spec.channels, height: spec.height, width: spec.width, range: spec.valueRange };
    const sources = await readAll(await expandInputs(req.inputs), spec);
    const referenceFiles = await expandInputs(req.reference);
    const truth = new Map<string, Float32Array>();
    if (req.groundTruth) for (const t of await readAll(await expandInputs(req.groundTruth), spec)) truth.set(basename(t.file), t.data);
    events.onStage?.(
      `sweep: ${sources.length} sources × ${req.t0s.length} t0 × ${req.weights.length} weights; ${referenceFiles.length} reference images; features: ${extractor.name}`,
    );
    const reference = await measureReference(referenceFiles, spec, shape, extractor, req.referenceCache);
    const paired = sources.flatMap((s) => truth.get(basename(s.file)) ?? []);
    const truths = await measureImages(paired, shape, extractor, reference);
    const untranslated = await measureImages(
      sources.map((s) => s.data),
      shape,
      extractor,
      reference,
    );
    const others = req.others
      ? await measureOthers(
          await expandInputs(req.others.files),
          req.others.draws ?? 3,
          sources.length,
          referenceFiles,
          spec,
          shape,
          extractor,
          reference,
        )
      : [];
    const base = TranslateParamsSchema.parse(req.params ?? {});
    const rows: SweepRow[] = [];
    await mkdir(req.outDir, { recursive: true });
    for (const t0 of req.t0s) {
      for (const w of req.weights) {
        const params = { ...base, t0, dgWeight: w, dgWeight2: base.dgWeight2 === null ? null : w };
        const outputs = await translateSetting(translator, sources, params, signal);
        if (req.writeImages ?? true) {
          const dir = join(req.outDir, `t${t0}_w${w}`);
          await mkdir(dir, { recursive: true });
          for (const [i, o] of outputs.entries()) {
            await writeFileAtomic(
              join(dir, `${basename(sources[i]!.file, extname(sources[i]!.file))}.png`),
              await encodePng(o, spec, { parameters: `t0: ${t0}, DG weight: ${w}, Seed: ${base.seed + i}` }),
            );
          }
        }
        events.onOutputs?.({ t0, w }, { outputs, sources, truths: sources.map((s) => truth.get(basename(s.file)) ?? null), spec });
        const row = await measureSetting({ t0, w, outputs, sources, truth, spec, shape, extractor, reference, translator });
        rows.push(row);
        events.onRow?.(row);
      }
    }
    const csv = toCsv(rows);
    const json = JSON.stringify(
      {
        model: translator.name,
        discriminator: translator.discriminatorName,
        features: extractor.name,
        params: base,
        rows,
        truths,
        others,
        untranslated,
      },
      null,
      2,
    );
    await writeFileAtomic(join(req.outDir, 'results.csv'), csv);
    await writeFileAtomic(join(req.outDir, 'results.json'), json);
    const plots = await writeFrontiers(rows, { truths, others, untranslated }, req.outDir, extractor.name);
    return { rows, truths, others, untranslated, csv, json, plots };
  } finally {
    await extractor.dispose();
    await translator.dispose();
  }
}
