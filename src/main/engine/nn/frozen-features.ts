/**
 * The paper's default discriminator design: a frozen, pre-trained feature extractor (for
 * the paper, the ADM classifier's encoder) cut at a named tensor, plus a small trainable
 * time-conditioned head. Only the head is trained; guidance differentiates through both.
 */
import type { GraphBuilder } from '../onnx/builder.js';
import type { OnnxModel, OnnxNode } from '../onnx/ir.js';
import { parseModel, serializeModel } from '../onnx/ir.js';
import { OnnxDataType } from '../onnx/proto.js';
import { createSession, ort } from '../onnx/session.js';
import type { BuiltNet } from './discriminator-net.js';
import { NetBuilder } from './layers.js';

export interface FrozenFeaturesArch {
  kind: 'frozen-features';
  /** the feature extractor's ONNX file (as given by the user) */
  featureOnnx: string;
  /** the tensor to cut the extractor at: [N, C, H, W] (pooled) or [N, D] */
  featureTensor: string;
  hidden: number;
  timeDim: number;
  /**
   * for a time-conditioned extractor (the paper's noisy ADM classifier, or a score model's own
   * U-Net encoder): which of its inputs takes time, and how the discriminator's LVP τ is encoded
   */
  timeInput?: { name: string; encoding: FeatureTimeEncoding } | undefined;
}

/** The trained head's sizes the app uses for this design (`train-discriminator --features`). */
export const FROZEN_FEATURES_HEAD = { hidden: 256, timeDim: 64 } as const;

/** `tau`: the LVP τ itself; `ddpm-step`: the step of a T-step DDPM schedule. */
export type FeatureTimeEncoding = { kind: 'tau' } | { kind: 'ddpm-step'; steps: number };

/**
 * dg-math §3: a time fraction t maps to step round(t·(T−1)) of a T-step DDPM schedule (the LVP
 * β 0.1…20 is the continuous limit of DDPM linear β 1e-4…0.02, T = 1000); clipped to [0, T−1].
 */
export function ddpmStepFromTau(tau: number, steps: number): number {
  return Math.min(steps - 1, Math.max(0, Math.round(tau * (steps - 1))));
}

/** The same mapping as graph nodes, cast to the extractor's time dtype. */
function encodeFeatureTime(g: GraphBuilder, tau: string, encoding: FeatureTimeEncoding, dtype: 'float32' | 'int64'): string {
  let v = tau;
  if (encoding.kind === 'ddpm-step') {
    const scaled = g.op('Round', [g.op('Mul', [tau, g.scalar(encoding.steps - 1)])]);
    v = g.op('Clip', [scaled, g.scalar(0), g.scalar(encoding.steps - 1)]);
  }
  return dtype === 'float32' ? v : g.op('Cast', [v], { to: OnnxDataType.int64 });
}

/** Keep only the nodes needed to compute `tensor`; error naming the tensor if nothing makes it. */
export function cutAt(model: OnnxModel, tensor: string, source: string): OnnxModel {
  const producers = new Map<string, OnnxNode>();
  for (const n of model.graph.nodes) for (const o of n.outputs) producers.set(o, n);
  if (!producers.has(tensor)) {
    const names = model.graph.nodes.flatMap((n) => n.outputs).slice(-8);
    throw new Error(`feature extractor "${source}" has no tensor named "${tensor}" (its last tensors include: ${names.join(', ')})`);
  }
  const keep = new Set<OnnxNode>();
  const stack = [tensor];
  while (stack.length) {
    const v = stack.pop()!;
    const n = producers.get(v);
    if (!n || keep.has(n)) continue;
    keep.add(n);
    stack.push(...n.inputs.filter(Boolean));
  }
  const nodes = model.graph.nodes.filter((n) => keep.has(n));
  const used = new Set(nodes.flatMap((n) => n.inputs));
  const initializers = new Map([...model.graph.initializers].filter(([k]) => used.has(k)));
  return {
    ...model,
    graph: {
      ...model.graph,
      nodes,
      initializers,
      inputs: model.graph.inputs.filter((i) => used.has(i.name)),
      outputs: [{ name: tensor, dtype: 'float32', shape: null }],
    },
  };
}

/** Build the discriminator: x → frozen features → pool → [features, emb(τ)] → MLP → logit. */
export async function buildFrozenFeatureNet(
  arch: FrozenFeaturesArch,
  featureBytes: Uint8Array,
  dataShape: number[],
  seed = 0,
): Promise<BuiltNet> {
  const extractor = cutAt(parseModel(featureBytes, arch.featureOnnx), arch.featureTensor, arch.featureOnnx);
  const inputs = extractor.graph.inputs;
  const timeIn = arch.timeInput ? inputs.find((i) => i.name === arch.timeInput!.name) : undefined;
  if (arch.timeInput && !timeIn)
    throw new Error(
      `feature extractor "${arch.featureOnnx}" cut at "${arch.featureTensor}" has no input "${arch.timeInput.name}" (its inputs: ${inputs.map((i) => i.name).join(', ')})`,
    );
  const imageInputs = inputs.filter((i) => i !== timeIn);
  if (imageInputs.length !== 1) {
    throw new Error(
      `feature extractor "${arch.featureOnnx}" cut at "${arch.featureTensor}" needs ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); ` +
        'it must take the image alone, or the image and a time input named by --feature-time',
    );
  }
  if (timeIn && timeIn.dtype !== 'float32' && timeIn.dtype !== 'int64')
    throw new Error(
      `feature extractor "${arch.featureOnnx}": time input "${timeIn.name}" is ${timeIn.dtype}; float32 or int64 are supported`,
    );
  const timeDType = timeIn?.dtype as 'float32' | 'int64' | undefined;
  // probe the feature size with one image
  const probe = await createSession(serializeModel(extractor), arch.featureOnnx);
  const inputName = imageInputs[0]!.name;
  const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
    [inputName]: new ort.Tensor('float32', new Float32Array(dataShape.reduce((a, b) => a * b, 1)), [1, ...dataShape]),
  };
  if (timeIn)
    feeds[timeIn.name] =
      timeDType === 'int64' ? new ort.Tensor('int64', new BigInt64Array(1), [1]) : new ort.Tensor('float32', new Float32Array(1), [1]);
  const out = await probe.session.run(feeds);
  await probe.session.release();
  const dims = out[arch.featureTensor]!.dims;
  if (dims.length !== 2 && dims.length !== 4)
    throw new Error(`feature tensor "${arch.featureTensor}" has shape [${dims.join(', ')}]; expected [N, D] or [N, C, H, W]`);
  const featureDim = dims[1]!;

  const net = new NetBuilder('discriminator', seed);
  const { g } = net;
  const x = g.input('x', 'float32', ['N', ...dataShape]);
  const t = g.input('t', 'float32', ['N']);
  // splice the frozen extractor in, its names prefixed so they cannot collide
  const timeFeed = timeIn ? encodeFeatureTime(g, t, arch.timeInput!.encoding, timeDType!) : '';
  const rename = (v: string) => (v === '' ? v : v === inputName ? x : timeIn && v === timeIn.name ? timeFeed : `frozen/${v}`);
  for (const [k, v] of extractor.graph.initializers) g.initializers.set(rename(k), v);
  for (const n of extractor.graph.nodes)
    g.nodes.push({ ...n, name: `frozen/${n.name}`, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) });
  let f = rename(arch.featureTensor);
  if (dims.length === 4) f = net.pool(f);
  let h = g.op('Concat', [f, net.timeEmbedding(t, arch.timeDim)], { axis: 1 });
  h = net.silu(net.linear(h, featureDim + arch.timeDim, arch.hidden));
  h = net.silu(net.linear(h, arch.hidden, arch.hidden));
  g.identity(net.linear(h, arch.hidden, 1), 'logit');
  g.output('logit', 'float32', ['N', 1]);
  const model = g.build({ architecture: JSON.stringify(arch) }, Math.max(17, extractor.opsetVersion));
  const paramCount = net.params.reduce((s, p) => s + model.graph.initializers.get(p)!.data.length, 0);
  return { model, params: net.params, paramCount };
}
