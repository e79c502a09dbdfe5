/**
 * Time-conditioned classifiers (paper Eq. 6), loaded from a `dg-studio/classifier@1` manifest: the
 * load-time check (names, dtypes, shapes, one dry run) that `inspect` and the import use, and the
 * guidance critic log p(y | x_τ, τ) with its gradient, built by the project's differentiator.
 */
import { dirname } from 'node:path';
import { ClassifierManifestSchema, describeManifestErrors, upgradeManifest, type ClassifierManifest } from '../../../shared/manifest.js';
import { fileInManifestFolder } from './manifest-files.js';
import type { Critic } from '../sampling/guidance.js';
import { createOnnxCritic, encodeDiscriminatorTime, LOG_RATIO_OUTPUT } from './onnx-critic.js';
import { gradient } from '../onnx/autodiff.js';
import { Emitter } from '../onnx/emitter.js';
import { parseModel, serializeModel, type OnnxModel } from '../onnx/ir.js';
import { readFile } from 'node:fs/promises';
import { createSession, expectDType, ort, tensorMetadata, type SessionOptions } from '../onnx/session.js';
import { dryRunBatch, manifestPathOf, missingTensor, readJsonFile } from './score-model.js';
import { firstNonFinite } from '../tensor.js';

/** Read, check and dry-run a classifier manifest; returns it, or throws naming the field and the fix. */
export async function checkClassifier(manifestPathOrFolder: string, opts: SessionOptions = {}): Promise<ClassifierManifest> {
  const manifestPath = manifestPathOf(manifestPathOrFolder);
  const up = upgradeManifest(await readJsonFile(manifestPath, 'classifier manifest'));
  const parsed = ClassifierManifestSchema.safeParse(up.raw);
  if (!parsed.success) throw new Error(describeManifestErrors(manifestPath, parsed.error, up.raw));
  const m = parsed.data;
  const onnxPath = fileInManifestFolder(dirname(manifestPath), m.onnx, 'onnx');
  const s = await createSession(onnxPath, onnxPath, opts);
  try {
    for (const [field, kind, name] of [
      ['io.x', 'input', m.io.x],
      ['io.t', 'input', m.io.t],
      ['io.output', 'output', m.io.output],
    ] as const) {
      const names = kind === 'input' ? s.session.inputNames : s.session.outputNames;
      if (!names.includes(name)) throw missingTensor(manifestPath, field, kind, name, names);
    }
    expectDType(s, 'input', m.io.x, ['float32']);
    const timeType = expectDType(s, 'input', m.io.t, ['float32', 'int64']);
    if (m.timeDType && m.timeDType !== timeType)
      opts.onWarning?.(
        `manifest "${manifestPath}": timeDType is "${m.timeDType}", but the file's input "${m.io.t}" is ${timeType}; using ${timeType}`,
      );
    const out = tensorMetadata(s, 'output', m.io.output);
    const k = out.isTensor ? out.shape[1] : undefined;
    if (typeof k === 'number' && k !== m.classes.length)
      throw new Error(
        `manifest "${manifestPath}": "classes" names ${m.classes.length} classes, but output "${m.io.output}" has ${k} columns`,
      );
    const x = dryRunBatch(m.dataShape, m.valueRange);
    const times = [0.3, 0.7].map((tau) => encodeDiscriminatorTime(tau, m.timeInput, m.lvp));
    const feeds = {
      [m.io.x]: new ort.Tensor('float32', x.data, x.shape),
      [m.io.t]:
        timeType === 'int64'
          ? new ort.Tensor(
              'int64',
              BigInt64Array.from(times, (v) => BigInt(Math.round(v))),
              [2],
            )
          : new ort.Tensor('float32', Float32Array.from(times), [2]),
    };
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = await s.session.run(feeds);
    } catch (e) {
      throw new Error(`manifest "${manifestPath}": a dry run of the classifier on 2 items failed: ${(e as Error).message.split('\n')[0]}`, {
        cause: e,
      });
    }
    const logits = result[m.io.output]!;
    if (logits.dims.length !== 2 || logits.dims[0] !== 2 || logits.dims[1] !== m.classes.length)
      throw new Error(
        `manifest "${manifestPath}": a dry run gave "${m.io.output}" the shape [${logits.dims.join(', ')}]; expected [2, ${m.classes.length}]`,
      );
    const bad = firstNonFinite(logits.data as Float32Array);
    if (bad >= 0) throw new Error(`manifest "${manifestPath}": a dry run gave a non-finite logit (${(logits.data as Float32Array)[bad]})`);
    return m;
  } finally {
    await s.session.release();
  }
}

/**
 * The guidance graph of a classifier (dg-math §5, Eq. 6): log p(y | x) = Σ_k onehot(y)_k ·
 * log_softmax(logits)_k (or the given log-probabilities), y fed as `class_label` (int64 [N]), and its
 * gradient w.r.t. x — the same outputs as a discriminator's guidance graph, so one critic runs both.
 */
export function buildClassifierGuidanceModel(forward: OnnxModel, m: ClassifierManifest): OnnxModel {
  const model: OnnxModel = {
    ...forward,
    graph: {
      ...forward.graph,
      nodes: [...forward.graph.nodes],
      inputs: [...forward.graph.inputs, { name: 'class_label', dtype: 'int64', shape: ['N'] }],
      outputs: [],
      initializers: new Map(forward.graph.initializers),
    },
  };
  const e = new Emitter(model.graph, 'cls/');
  const logp = m.output === 'logits' ? e.op('LogSoftmax', [m.io.output], { axis: 1 }) : m.io.output;
  const k = m.classes.length;
  const values = e.constant({ dtype: 'float32', dims: [2], data: Float32Array.from([0, 1]) });
  const onehot = e.op('OneHot', ['class_label', e.i64([k]), values], { axis: -1 });
  e.op('ReduceSum', [e.op('Mul', [logp, onehot]), e.i64([1])], { keepdims: 0 }, LOG_RATIO_OUTPUT);
  model.graph.nodes.push(...e.nodes);
  model.graph.outputs.push({ name: LOG_RATIO_OUTPUT, dtype: 'float32', shape: ['N'] });
  return gradient(model, { of: LOG_RATIO_OUTPUT, wrt: [m.io.x] });
}

export interface LoadedClassifier {
  manifest: ClassifierManifest;
  manifestPath: string;
  /** log p(y | x_τ) for the class chosen at load */
  critic: Critic;
  dispose(): Promise<void>;
}

/** A classifier for guidance toward class `label` (an index or a class name). Checked first (checkClassifier). */
export async function loadClassifier(
  manifestPathOrFolder: string,
  label: number | string,
  opts: SessionOptions = {},
): Promise<LoadedClassifier> {
  const manifestPath = manifestPathOf(manifestPathOrFolder);
  const m = await checkClassifier(manifestPath, opts);
  const y = typeof label === 'number' ? label : m.classes.indexOf(label);
  if (!Number.isInteger(y) || y < 0 || y >= m.classes.length)
    throw new Error(
      `classifier "${m.name}" knows the classes ${m.classes.map((c, i) => `${i} (${c})`).join(', ')}; got ${JSON.stringify(label)}`,
    );
  const onnxPath = fileInManifestFolder(dirname(manifestPath), m.onnx, 'onnx');
  const forward = parseModel(await readFile(onnxPath), onnxPath);
  let guidance: Uint8Array;
  try {
    guidance = serializeModel(buildClassifierGuidanceModel(forward, m));
  } catch (e) {
    throw new Error(`classifier "${manifestPath}": ${(e as Error).message}`, { cause: e });
  }
  const timeDType = forward.graph.inputs.find((v) => v.name === m.io.t)?.dtype === 'int64' ? 'int64' : 'float32';
  const critic = await createOnnxCritic(guidance, { ...opts, ...m, timeDType, source: manifestPath, classLabel: y });
  return { manifest: m, manifestPath, critic: { ...critic, name: `${m.name}: ${m.classes[y]}` }, dispose: critic.dispose };
}
