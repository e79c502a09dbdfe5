/**
 * Discriminators for guidance, loaded from a manifest. This module knows the analytic
 * kind (closed-form log ratio of Gaussian mixtures, dg-math §7); trained ONNX
 * discriminators plug into the same Critic interface.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { z } from 'zod';
import type { MixtureSpecSchema } from '../../../shared/manifest.js';
import {
  describeManifestErrors,
  DiscriminatorManifestSchema,
  upgradeManifest,
  type DiscriminatorManifest,
  type OnnxDiscriminatorManifest,
} from '../../../shared/manifest.js';
import type { Critic } from '../sampling/guidance.js';
import { readImage } from '../io/image-io.js';
import { buildGuidanceModel, createOnnxCritic, sumOfLogitGraphs } from './onnx-critic.js';
import { parseModel, serializeModel, type OnnxModel } from '../onnx/ir.js';
import { firstNonFinite } from '../tensor.js';
import type { SessionOptions } from '../onnx/session.js';
import { dryRunBatch, manifestPathOf, missingTensor, readJsonFile } from './score-model.js';
import { exactLogRatioCritic, type GaussianMixture } from './toy-mixture.js';
import { fileInManifestFolder } from './manifest-files.js';

export interface LoadedDiscriminator {
  manifest: DiscriminatorManifest;
  manifestPath: string;
  critic: Critic;
  dispose(): Promise<void>;
}

async function mixtureFromSpec(
  spec: z.infer<typeof MixtureSpecSchema>,
  base: string,
  m: Extract<DiscriminatorManifest, { kind: 'analytic-mixture-ratio' }>,
): Promise<GaussianMixture> {
  const size = m.dataShape.reduce((a, b) => a * b, 1);
  let means: number[][];
  if (spec.meanImages) {
    const [c, h, w] = m.dataShape;
    if (m.dataShape.length !== 3 || (c !== 1 && c !== 3)) throw new Error('meanImages need a dataShape [channels (1 or 3), height, width]');
    means = await Promise.all(
      spec.meanImages.map(async (p, i) =>
        Array.from(
          await readImage(fileInManifestFolder(base, p, `mixture.meanImages[${i}]`), {
            channels: c,
            height: h!,
            width: w!,
            valueRange: m.valueRange,
          }),
        ),
      ),
    );
  } else means = spec.means!;
  for (const mu of means) if (mu.length !== size) throw new Error(`a mixture mean has ${mu.length} values; dataShape needs ${size}`);
  return { weights: spec.weights, variances: spec.variances, means };
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message;
    throw new Error(`cannot read ${what} "${path}": ${why}`, { cause: e });
  }
}

export async function loadDiscriminator(
  manifestPathOrFolder: string,
  expect?: { dataShape: number[]; valueRange: readonly [number, number] },
  session: SessionOptions = {},
  classLabel: number | null = null,
  /**
   * a fully convolutional discriminator applied at other spatial sizes than it was trained at (a latent one on
   * a photo's latents of another aspect): its guidance graph is rebuilt from the forward graph with the
   * input's height and width left free (a packaged guidance graph may hold constants of its size)
   */
  anySpatialSize = false,
): Promise<LoadedDiscriminator> {
  const manifestPath = manifestPathOf(manifestPathOrFolder);
  const up = upgradeManifest(await readJsonFile(manifestPath, 'discriminator manifest'));
  const parsed = DiscriminatorManifestSchema.safeParse(up.raw);
  if (!parsed.success) throw new Error(describeManifestErrors(manifestPath, parsed.error, up.raw));
  for (const n of up.notes) session.onWarning?.(`manifest "${manifestPath}": ${n}`);
  const manifest = parsed.data;
  if (expect) {
    if (manifest.dataShape.join('x') !== expect.dataShape.join('x')) {
      throw new Error(
        `discriminator "${manifestPath}" works on data of shape [${manifest.dataShape.join(', ')}], but the score model's is [${expect.dataShape.join(', ')}]`,
      );
    }
    if (manifest.valueRange[0] !== expect.valueRange[0] || manifest.valueRange[1] !== expect.valueRange[1]) {
      throw new Error(
        `discriminator "${manifestPath}" expects values in [${manifest.valueRange.join(', ')}], the score model in [${expect.valueRange.join(', ')}]`,
      );
    }
  }
  const base = dirname(manifestPath);
  const wrap = (e: unknown) => new Error(`discriminator "${manifestPath}": ${(e as Error).message}`, { cause: e });
  if (manifest.kind === 'onnx') {
    const forwardPath = fileInManifestFolder(base, manifest.onnx, 'onnx');
    const forward = parseModel(await readBytes(forwardPath, 'discriminator'), forwardPath);
    const timeDType = checkForwardGraph(forward, manifest, manifestPath, session.onWarning);
    const free = (g: OnnxModel) => (anySpatialSize ? withFreeSpatialSize(g, manifest.io.x) : g);
    let guidance: Uint8Array;
    if (manifest.refinements?.length) {
      // dg-math §10: later rounds' log ratios added to round 1's, as one graph (one session run per step)
      if (manifest.output !== 'logit') throw wrap(new Error('later rounds (refinements) need logit outputs, not probabilities'));
      const rounds = [{ forward: free(forward), weight: 1 }];
      for (const [k, ref] of manifest.refinements.entries()) {
        const field = `refinements[${k}].onnx`;
        const path = fileInManifestFolder(base, ref.onnx, field);
        const graph = parseModel(
          await readBytes(path, `discriminator round ${k + 2}`).catch((e: unknown) => Promise.reject(wrap(e))),
          path,
        );
        checkForwardGraph(graph, manifest, `${manifestPath}" (${field}: "${ref.onnx}`, session.onWarning);
        rounds.push({ forward: free(graph), weight: ref.weight });
      }
      try {
        guidance = serializeModel(buildGuidanceModel(sumOfLogitGraphs(rounds, manifest.io), manifest.io, 'logit'));
      } catch (e) {
        throw wrap(e);
      }
    } else if (manifest.guidanceOnnx && !anySpatialSize)
      guidance = await readBytes(fileInManifestFolder(base, manifest.guidanceOnnx, 'guidanceOnnx'), 'discriminator guidance graph');
    else {
      try {
        guidance = serializeModel(buildGuidanceModel(free(forward), manifest.io, manifest.output));
      } catch (e) {
        throw wrap(e);
      }
    }
    if (classLabel !== null && manifest.classes && classLabel >= manifest.classes.length) {
      throw new Error(
        `discriminator "${manifestPath}" knows classes 0…${manifest.classes.length - 1} (${manifest.classes.join(', ')}); got ${classLabel}`,
      );
    }
    const critic = await createOnnxCritic(guidance, { ...session, ...manifest, timeDType, source: manifestPath, classLabel });
    try {
      await dryRunCritic(critic, manifest.dataShape, manifest.valueRange);
    } catch (e) {
      await critic.dispose();
      throw new Error(`manifest "${manifestPath}": a dry run of the discriminator on 2 items failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return { manifest, manifestPath, critic, dispose: critic.dispose };
  }
  const [real, fake] = await Promise.all([
    mixtureFromSpec(manifest.real, base, manifest),
    mixtureFromSpec(manifest.fake, base, manifest),
  ]).catch((e) => {
    throw wrap(e);
  });
  const critic = { ...exactLogRatioCritic(real, fake), name: manifest.name };
  return { manifest, manifestPath, critic, dispose: async () => {} };
}

/** The graph with input `x`'s dimensions after the channels symbolic (H, W): any spatial size is fed. */
function withFreeSpatialSize(model: OnnxModel, x: string): OnnxModel {
  const inputs = model.graph.inputs.map((v) =>
    v.name === x && v.shape && v.shape.length > 2
      ? { ...v, shape: [...v.shape.slice(0, 2), ...v.shape.slice(2).map((_, i) => `S${i}`)] }
      : v,
  );
  return { ...model, graph: { ...model.graph, inputs } };
}

/**
 * The forward graph against its manifest, before any session: the names in `io`, the inputs it
 * does not feed, the image shape, and the time input's dtype (read from the file; a manifest that
 * says otherwise gets a warning). Returns the dtype to feed.
 */
function checkForwardGraph(
  forward: OnnxModel,
  m: OnnxDiscriminatorManifest,
  source: string,
  onWarning?: (message: string) => void,
): 'float32' | 'int64' {
  const inputs = forward.graph.inputs;
  const missing = (field: string, kind: 'input' | 'output', name: string, has: { name: string }[]) =>
    missingTensor(
      source,
      field,
      kind,
      name,
      has.map((v) => v.name),
    );
  const x = inputs.find((v) => v.name === m.io.x);
  if (!x) throw missing('io.x', 'input', m.io.x, inputs);
  const t = inputs.find((v) => v.name === m.io.t);
  if (!t) throw missing('io.t', 'input', m.io.t, inputs);
  if (!forward.graph.outputs.some((o) => o.name === m.io.output)) throw missing('io.output', 'output', m.io.output, forward.graph.outputs);
  const extra = inputs.filter((v) => v.name !== m.io.x && v.name !== m.io.t);
  for (const v of extra) {
    if (v.name !== 'class_label')
      throw new Error(
        `manifest "${source}": the ONNX file also has the input "${v.name}", which a discriminator is not fed (only x, t and class_label)`,
      );
    if (!m.classes) throw new Error(`manifest "${source}": the ONNX file has a class_label input; list the class names in "classes"`);
  }
  if (m.classes && !extra.length) throw new Error(`manifest "${source}": "classes" is given, but the ONNX file has no class_label input`);
  if (x.dtype !== 'float32') throw new Error(`manifest "${source}": the file's image input "${x.name}" is ${x.dtype}; it must be float32`);
  if (x.shape) {
    const want = [null, ...m.dataShape];
    const bad = x.shape.length !== want.length || x.shape.some((d, i) => i > 0 && typeof d === 'number' && d !== want[i]);
    if (bad)
      throw new Error(
        `manifest "${source}": the file's input "${x.name}" has shape [${x.shape.map((d) => d ?? '?').join(', ')}], but dataShape is [${m.dataShape.join(', ')}] (batch first)`,
      );
    if (typeof x.shape[0] === 'number' && x.shape[0] !== 1 && x.shape[0] !== undefined)
      throw new Error(
        `manifest "${source}": the file's input "${x.name}" has a fixed batch of ${x.shape[0]}; re-export it with a dynamic batch axis`,
      );
  }
  if (t.dtype !== 'float32' && t.dtype !== 'int64')
    throw new Error(`manifest "${source}": the file's time input "${t.name}" is ${t.dtype}; discriminators take float32 or int64 time`);
  if (m.timeDType && m.timeDType !== t.dtype)
    onWarning?.(
      `manifest "${source}": timeDType is "${m.timeDType}", but the file's input "${t.name}" is ${t.dtype}; using ${t.dtype} (remove timeDType or correct it)`,
    );
  if (t.dtype === 'int64' && m.timeInput.kind !== 'step')
    onWarning?.(
      `manifest "${source}": the time input "${t.name}" is int64 but timeInput is "${m.timeInput.kind}": τ will be rounded to whole numbers — did you mean {"kind": "step"}?`,
    );
  return t.dtype;
}

/** Two items at τ = 0.3 and 0.7: one value and a finite gradient per item, or the reason why not. */
async function dryRunCritic(critic: Critic, dataShape: number[], valueRange: readonly [number, number]): Promise<void> {
  const x = dryRunBatch(dataShape, valueRange);
  const { value, grad } = await critic.evaluate(x, Float64Array.from([0.3, 0.7]));
  if (value.length !== 2) throw new Error(`it returned ${value.length} values for 2 items`);
  if (grad.data.length !== x.data.length) throw new Error(`its gradient has ${grad.data.length} values for ${x.data.length}`);
  const bad = firstNonFinite(grad.data);
  if (bad >= 0) throw new Error(`its gradient is ${grad.data[bad]} at value ${bad}`);
}
