/**
 * Time-conditioned classifiers (paper Eq. 6), loaded from a `dg-studio/classifier@1` manifest.
 * Today: the load-time check (names, dtypes, shapes, one dry run) that `inspect` and the import use;
 * the guidance term itself is issue 17's.
 */
import { dirname } from 'node:path';
import { ClassifierManifestSchema, describeManifestErrors, upgradeManifest, type ClassifierManifest } from '../../shared/manifest.js';
import { fileInManifestFolder } from './manifest-files.js';
import { encodeDiscriminatorTime } from './onnx-critic.js';
import { createSession, expectDType, ort, tensorMetadata, type SessionOptions } from './onnx/session.js';
import { manifestPathOf, readJsonFile } from './score-model.js';
import { firstNonFinite } from './tensor.js';

/** Read, check and dry-run a classifier manifest; returns it, or throws naming the field and the fix. */
export async function checkClassifier(manifestPathOrFolder: string, opts: SessionOptions = {}): Promise<ClassifierManifest> {
  const manifestPath = manifestPathOf(manifestPathOrFolder);
  const up = upgradeManifest(await readJsonFile(manifestPath, 'classifier manifest'));
  const parsed = ClassifierManifestSchema.safeParse(up.raw);
  if (!parsed.success) throw new Error(describeManifestErrors(manifestPath, parsed.error));
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
      if (!names.includes(name))
        throw new Error(
          `manifest "${manifestPath}": ${field} is "${name}", but the ONNX file has no ${kind} of that name; its ${kind}s are ${names.map((n) => `"${n}"`).join(', ')}`,
        );
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
    const size = m.dataShape.reduce((a, b) => a * b, 1);
    const times = [0.3, 0.7].map((tau) => encodeDiscriminatorTime(tau, m.timeInput, m.lvp));
    const feeds = {
      [m.io.x]: new ort.Tensor('float32', new Float32Array(2 * size).fill((m.valueRange[0] + m.valueRange[1]) / 2), [2, ...m.dataShape]),
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
