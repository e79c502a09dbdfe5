/**
 * Score-model adapter: a manifest + ONNX file → a canonical VE denoiser running on ORT.
 */
import { readFile, stat } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeManifestErrors, ScoreModelManifestSchema, upgradeManifest, type ScoreModelManifest } from '../../../shared/manifest.js';
import { canonicalDenoiser, type Denoiser, type NetworkCall } from '../sampling/denoiser.js';
import { modelSchedule, type ModelSchedule } from '../sampling/model-schedule.js';
import { createSession, expectDType, ort, tensorMetadata, type OrtSession, type SessionOptions } from '../onnx/session.js';
import type { Tensor } from '../tensor.js';
import { fileInManifestFolder } from './manifest-files.js';

export interface ScoreModel {
  manifest: ScoreModelManifest;
  manifestPath: string;
  onnxPath: string;
  schedule: ModelSchedule;
  session: OrtSession;
  /** canonical denoiser; `classLabels` only for class-conditional models */
  denoiser(classLabels?: number[]): Denoiser;
  dispose(): Promise<void>;
}

export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message;
    throw new Error(`cannot read ${what} "${path}": ${why}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`cannot read ${what} "${path}": not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** A score-model manifest read and checked against its schema; `notes` says which old spellings were read. */
export async function readScoreModelManifest(path: string, onNote?: (note: string) => void): Promise<ScoreModelManifest> {
  const up = upgradeManifest(await readJsonFile(path, 'score-model manifest'));
  const parsed = ScoreModelManifestSchema.safeParse(up.raw);
  if (!parsed.success) throw new Error(describeManifestErrors(path, parsed.error, up.raw));
  for (const n of up.notes) onNote?.(`manifest "${path}": ${n}`);
  return parsed.data;
}

function checkShape(source: string, name: string, declared: readonly (number | string)[], expected: number[]): void {
  if (declared.length === 0) return; // unknown rank: nothing to check before running
  if (declared.length !== expected.length + 1) {
    throw new Error(
      `ONNX model "${source}": "${name}" has rank ${declared.length} ([${declared.join(', ')}]), ` +
        `but the manifest's dataShape [${expected.join(', ')}] needs rank ${expected.length + 1} (batch first)`,
    );
  }
  expected.forEach((d, i) => {
    const got = declared[i + 1];
    if (typeof got === 'number' && got !== d) {
      throw new Error(
        `ONNX model "${source}": "${name}" has shape [${declared.join(', ')}], but the manifest's dataShape is [${expected.join(', ')}]`,
      );
    }
  });
}

/** A manifest path, or a model folder standing for its manifest.json. */
export function manifestPathOf(path: string): string {
  try {
    if (statSync(path).isDirectory()) return join(path, 'manifest.json');
  } catch {
    // not there: the read reports it
  }
  return path;
}

export async function loadScoreModel(manifestPathOrFolder: string, opts: SessionOptions = {}): Promise<ScoreModel> {
  const manifestPath = manifestPathOf(manifestPathOrFolder);
  const manifest = await readScoreModelManifest(manifestPath);
  const onnxPath = fileInManifestFolder(dirname(manifestPath), manifest.onnx, 'onnx');
  try {
    await stat(onnxPath);
  } catch {
    throw new Error(`score-model manifest "${manifestPath}" names ONNX file "${manifest.onnx}", which does not exist (${onnxPath})`);
  }
  const session = await createSession(onnxPath, onnxPath, opts);
  try {
    return await adaptScoreModel(manifest, manifestPath, onnxPath, session, opts);
  } catch (e) {
    await session.session.release();
    throw e;
  }
}

/**
 * `field` of the manifest names `name`, which the file lacks: say what it has and how to fix it
 * (one wording for every manifest kind's load-time check).
 */
export function missingTensor(source: string, field: string, kind: 'input' | 'output', name: string, has: readonly string[]): Error {
  return new Error(
    `manifest "${source}": ${field} is "${name}", but the ONNX file has no ${kind} of that name; its ${kind}s are ${has.map((h) => `"${h}"`).join(', ')} — ` +
      `set ${field} to one of them (\`dg-studio inspect\` proposes a manifest)`,
  );
}

/** Every tensor the manifest names exists in the file, and every input of the file is fed. */
function checkScoreIo(manifest: ScoreModelManifest, manifestPath: string, session: OrtSession): void {
  const { io } = manifest;
  const inputs = session.session.inputNames;
  const outputs = session.session.outputNames;
  if (!inputs.includes(io.x)) throw missingTensor(manifestPath, 'io.x', 'input', io.x, inputs);
  if (!inputs.includes(io.t)) throw missingTensor(manifestPath, 'io.t', 'input', io.t, inputs);
  if (!outputs.includes(io.output)) throw missingTensor(manifestPath, 'io.output', 'output', io.output, outputs);
  if (io.classLabel && !inputs.includes(io.classLabel)) throw missingTensor(manifestPath, 'io.classLabel', 'input', io.classLabel, inputs);
  const unfed = inputs.filter((n) => n !== io.x && n !== io.t && n !== io.classLabel);
  if (unfed.length) {
    throw new Error(
      `manifest "${manifestPath}": the ONNX file also has the input${unfed.length > 1 ? 's' : ''} ${unfed.map((n) => `"${n}"`).join(', ')}, which the manifest does not feed — ` +
        (unfed.length === 1 && !io.classLabel
          ? `if it is a class label, set io.classLabel to "${unfed[0]}" and give "classes"`
          : 'only x, t and an optional class label can be fed'),
    );
  }
}

/** How the file is fed, as its metadata says (the file wins over the manifest, with a warning). */
interface FeedLayout {
  timeType: string;
  timeShape: 'scalar' | 'batch';
  /** a file exported with a fixed batch of 1: called one item at a time */
  oneAtATime: boolean;
  classType: string | null;
}

function feedLayout(
  manifest: ScoreModelManifest,
  manifestPath: string,
  onnxPath: string,
  session: OrtSession,
  opts: SessionOptions,
): FeedLayout {
  const { io } = manifest;
  expectDType(session, 'input', io.x, ['float32']);
  const timeType = expectDType(session, 'input', io.t, ['float32', 'int64', 'int32', 'float64']);
  if (manifest.timeDType && manifest.timeDType !== timeType) {
    opts.onWarning?.(
      `manifest "${manifestPath}": timeDType is "${manifest.timeDType}", but the file's input "${io.t}" is ${timeType}; using ${timeType} (remove timeDType or correct it)`,
    );
  }
  expectDType(session, 'output', io.output, ['float32']);
  const xMeta = tensorMetadata(session, 'input', io.x);
  const outMeta = tensorMetadata(session, 'output', io.output);
  const tMeta = tensorMetadata(session, 'input', io.t);
  if (xMeta.isTensor) checkShape(onnxPath, io.x, xMeta.shape, manifest.dataShape);
  if (outMeta.isTensor) checkShape(onnxPath, io.output, outMeta.shape, manifest.dataShape);
  // the file's rank says whether time is per item: [] → one scalar, [N] → one per item
  const fileTimeShape = tMeta.isTensor ? (tMeta.shape.length === 0 ? 'scalar' : tMeta.shape.length === 1 ? 'batch' : null) : null;
  if (tMeta.isTensor && tMeta.shape.length > 1) {
    throw new Error(
      `manifest "${manifestPath}": the file's time input "${io.t}" has shape [${tMeta.shape.join(', ')}]; a time input must be a scalar or one value per item`,
    );
  }
  // the file wins over the manifest; a model without either takes one time per item
  const timeShape = fileTimeShape ?? manifest.timeShape ?? 'batch';
  if (manifest.timeShape && fileTimeShape && manifest.timeShape !== fileTimeShape) {
    opts.onWarning?.(
      `manifest "${manifestPath}": timeShape is "${manifest.timeShape}", but the file's input "${io.t}" has shape [${tMeta.isTensor ? tMeta.shape.join(', ') : ''}]; using "${fileTimeShape}"`,
    );
  }
  const batchDim = xMeta.isTensor ? xMeta.shape[0] : undefined;
  if (typeof batchDim === 'number' && batchDim !== 1) {
    throw new Error(
      `ONNX model "${onnxPath}": input "${io.x}" has a fixed batch size of ${batchDim}; re-export it with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={"${io.x}": {0: "N"}, ...}))`,
    );
  }
  const classType = io.classLabel ? expectDType(session, 'input', io.classLabel, ['int64', 'int32', 'float32']) : null;
  return { timeType, timeShape, oneAtATime: batchDim === 1, classType };
}

/** The time input's tensor in the file's dtype and rank (a scalar takes the first value). */
function timeTensor(values: Float64Array, layout: FeedLayout): ort.Tensor {
  const dims = layout.timeShape === 'scalar' ? [] : [values.length];
  const vals = layout.timeShape === 'scalar' ? values.subarray(0, 1) : values;
  switch (layout.timeType) {
    case 'int64':
      return new ort.Tensor(
        'int64',
        BigInt64Array.from(vals, (v) => BigInt(Math.round(v))),
        dims,
      );
    case 'int32':
      return new ort.Tensor(
        'int32',
        Int32Array.from(vals, (v) => Math.round(v)),
        dims,
      );
    case 'float64':
      return new ort.Tensor('float64', Float64Array.from(vals), dims);
    default:
      return new ort.Tensor('float32', Float32Array.from(vals), dims);
  }
}

/** Class labels as the file takes them: indices (int64/int32) or one-hot rows. */
function classTensor(labels: number[], manifest: ScoreModelManifest, layout: FeedLayout): ort.Tensor {
  const count = manifest.classes?.count ?? 0;
  for (const l of labels) {
    if (!Number.isInteger(l) || l < 0 || l >= count) throw new Error(`class label ${l} is outside 0…${count - 1} for "${manifest.name}"`);
  }
  if (manifest.classes?.encoding === 'one-hot') {
    const data = new Float32Array(labels.length * count);
    labels.forEach((l, i) => (data[i * count + l] = 1));
    return new ort.Tensor('float32', data, [labels.length, count]);
  }
  return layout.classType === 'int32'
    ? new ort.Tensor('int32', Int32Array.from(labels), [labels.length])
    : new ort.Tensor(
        'int64',
        BigInt64Array.from(labels, (l) => BigInt(l)),
        [labels.length],
      );
}

/** One call of the file on a batch, its output checked. */
async function runScoreOnce(
  manifest: ScoreModelManifest,
  onnxPath: string,
  session: OrtSession,
  layout: FeedLayout,
  x: Tensor,
  time: Float64Array,
  labels?: number[],
): Promise<Tensor> {
  const { io } = manifest;
  const feeds: Record<string, ort.Tensor> = {
    [io.x]: new ort.Tensor('float32', x.data, x.shape),
    [io.t]: timeTensor(time, layout),
  };
  if (io.classLabel) {
    if (!labels) throw new Error(`score model "${manifest.name}" is class-conditional: give a class label`);
    feeds[io.classLabel] = classTensor(labels, manifest, layout);
  }
  let result: ort.InferenceSession.OnnxValueMapType;
  try {
    result = await session.session.run(feeds);
  } catch (e) {
    throw new Error(`score model "${manifest.name}" (${onnxPath}) failed to run: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const out = result[io.output] as ort.Tensor;
  if (out.type !== 'float32' || out.data.length !== x.data.length) {
    throw new Error(
      `score model "${manifest.name}": output "${io.output}" has shape [${out.dims.join(', ')}] (${out.type}); expected [${x.shape.join(', ')}] float32`,
    );
  }
  return { data: out.data as Float32Array, shape: [...x.shape] };
}

/** Check the manifest against the open session (names, dtypes, shapes, then one dry run) and adapt it. */
async function adaptScoreModel(
  manifest: ScoreModelManifest,
  manifestPath: string,
  onnxPath: string,
  session: OrtSession,
  opts: SessionOptions,
): Promise<ScoreModel> {
  checkScoreIo(manifest, manifestPath, session);
  const layout = feedLayout(manifest, manifestPath, onnxPath, session, opts);
  const schedule = modelSchedule(manifest.schedule, manifest.recommendedSigmaMin);
  const itemSize = manifest.dataShape.reduce((a, b) => a * b, 1);
  const runOnce = (x: Tensor, time: Float64Array, labels?: number[]) => runScoreOnce(manifest, onnxPath, session, layout, x, time, labels);
  const makeNet =
    (labels?: number[]): NetworkCall =>
    async (x, time) => {
      if (x.data.length !== x.shape[0]! * itemSize) throw new Error(`input does not match dataShape [${manifest.dataShape.join(', ')}]`);
      const sameTime = time.every((v) => v === time[0]);
      if (!layout.oneAtATime && (layout.timeShape === 'batch' || sameTime)) return runOnce(x, time, labels);
      // a fixed-batch-1 file, or a scalar-time model with items at different levels (per-item churn): one call per item
      const out = new Float32Array(x.data.length);
      for (let n = 0; n < time.length; n++) {
        const item = { data: x.data.subarray(n * itemSize, (n + 1) * itemSize), shape: [1, ...manifest.dataShape] };
        const r = await runOnce(item, time.subarray(n, n + 1), labels?.slice(n, n + 1));
        out.set(r.data, n * itemSize);
      }
      return { data: out, shape: [...x.shape] };
    };
  const denoiser = (classLabels?: number[]) =>
    canonicalDenoiser(makeNet(classLabels), {
      name: manifest.name,
      prediction: manifest.prediction,
      schedule,
      timeInput: manifest.timeInput,
      preconditioning: manifest.preconditioning,
    });
  await dryRun(manifest, manifestPath, schedule, denoiser);
  return { manifest, manifestPath, onnxPath, schedule, session, denoiser, dispose: () => session.session.release() };
}

/**
 * One call on a tiny batch (two items at two noise levels, mid-range pixels) before any job starts:
 * catches a wrong time encoding, class input or output shape now instead of at step 1 of a run.
 */
async function dryRun(
  manifest: ScoreModelManifest,
  manifestPath: string,
  schedule: ModelSchedule,
  denoiser: (labels?: number[]) => Denoiser,
): Promise<void> {
  const [lo, hi] = manifest.validTimeRange ?? [0, 1];
  const sigmas = Float64Array.from([lo + 0.25 * (hi - lo), lo + 0.75 * (hi - lo)], (t) => schedule.sigmaAt(Math.max(t, 1e-3)));
  const x = dryRunBatch(manifest.dataShape, manifest.valueRange);
  try {
    const out = await denoiser(manifest.classes ? [0, manifest.classes.count - 1] : undefined)(x, sigmas);
    if (out.data.length !== x.data.length) throw new Error(`it returned ${out.data.length} values for ${x.data.length}`);
  } catch (e) {
    throw new Error(`manifest "${manifestPath}": a dry run of the model on 2 items failed: ${(e as Error).message}`, { cause: e });
  }
}

/** Two items of mid-range pixels with a little structure: the input of every manifest kind's dry run. */
export function dryRunBatch(dataShape: number[], valueRange: readonly [number, number]): Tensor {
  const size = dataShape.reduce((a, b) => a * b, 1);
  const x = { data: new Float32Array(2 * size), shape: [2, ...dataShape] };
  const mid = (valueRange[0] + valueRange[1]) / 2;
  for (let i = 0; i < x.data.length; i++) x.data[i] = mid + (((i * 7919) % 13) / 13 - 0.5) * 0.5;
  return x;
}
