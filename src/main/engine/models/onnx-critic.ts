/**
 * A discriminator given as an ONNX forward network, used for guidance: its guidance graph
 * returns [log r, ∇x log r] in one run (dg-math §4), built with the differentiator.
 */
import type { DiscriminatorTimeSpec } from '../../../shared/manifest.js';
import type { Critic } from '../sampling/guidance.js';
import { gradient, gradOutputName } from '../onnx/autodiff.js';
import { Emitter } from '../onnx/emitter.js';
import { serializeModel, type OnnxGraph, type OnnxModel, type OnnxNode, type TensorData } from '../onnx/ir.js';
import { createSession, ort, type SessionOptions } from '../onnx/session.js';
import { LVP_DEFAULT, lvpAlpha, lvpSigmaVe, type LvpParams } from './schedules.js';
import type { Tensor } from '../tensor.js';

export const LOG_RATIO_OUTPUT = 'log_ratio';

/**
 * Guidance graph from a forward discriminator: log r = logit, or log(d/(1-d)) with d clipped
 * to [1e-5, 1-1e-5] (dg-math §4) for probability outputs; then ∇x log r summed over the batch
 * (items are independent, so each item gets its own gradient).
 */
export function buildGuidanceModel(forward: OnnxModel, io: { x: string; output: string }, output: 'logit' | 'probability'): OnnxModel {
  const model: OnnxModel = {
    ...forward,
    graph: { ...forward.graph, nodes: [...forward.graph.nodes], outputs: [], initializers: new Map(forward.graph.initializers) },
  };
  if (!forward.graph.outputs.some((o) => o.name === io.output)) {
    throw new Error(
      `discriminator graph has no output "${io.output}"; its outputs are: ${forward.graph.outputs.map((o) => o.name).join(', ')}`,
    );
  }
  if (!forward.graph.inputs.some((i) => i.name === io.x)) {
    throw new Error(`discriminator graph has no input "${io.x}"; its inputs are: ${forward.graph.inputs.map((i) => i.name).join(', ')}`);
  }
  const e = new Emitter(model.graph, 'guide/');
  const flat = e.op('Reshape', [io.output, e.i64([-1])]);
  if (output === 'logit') e.op('Identity', [flat], {}, LOG_RATIO_OUTPUT);
  else {
    const d = e.op('Clip', [flat, e.scalarLike(1e-5, flat), e.scalarLike(1 - 1e-5, flat)]);
    e.op('Sub', [e.op('Log', [d]), e.op('Log', [e.op('Sub', [e.scalarLike(1, d), d])])], {}, LOG_RATIO_OUTPUT);
  }
  model.graph.nodes.push(...e.nodes);
  model.graph.outputs.push({ name: LOG_RATIO_OUTPUT, dtype: 'float32', shape: ['N'] });
  return gradient(model, { of: LOG_RATIO_OUTPUT, wrt: [io.x] });
}

/**
 * Iterated rounds as one forward graph (dg-math §10): logit = Σ_k a_k·logit_k over networks that share their inputs
 * (x, t, class_label), so guidance runs one session per step instead of one per round. Every other tensor name
 * gets its round's prefix.
 */
export function sumOfLogitGraphs(rounds: { forward: OnnxModel; weight: number }[], io: { output: string }): OnnxModel {
  const first = rounds[0]!.forward;
  const shared = new Set(first.graph.inputs.map((v) => v.name));
  const nodes: OnnxNode[] = [];
  const initializers = new Map<string, TensorData>();
  const outs: string[] = [];
  for (const [k, { forward }] of rounds.entries()) {
    const inputs = forward.graph.inputs.map((v) => v.name).sort();
    if (inputs.join() !== [...shared].sort().join())
      throw new Error(`round ${k + 1}'s graph takes inputs ${inputs.join(', ')}; round 1's takes ${[...shared].sort().join(', ')}`);
    const rename = (n: string) => (n === '' || shared.has(n) ? n : `round${k + 1}/${n}`);
    for (const [name, t] of forward.graph.initializers) initializers.set(rename(name), t);
    for (const n of forward.graph.nodes)
      nodes.push({ ...n, name: rename(n.name), inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) });
    outs.push(rename(io.output));
  }
  const graph: OnnxGraph = { ...first.graph, nodes, initializers, outputs: [] };
  const e = new Emitter(graph, 'rounds/');
  const terms = outs.map((o, k) => (rounds[k]!.weight === 1 ? o : e.op('Mul', [o, e.scalarLike(rounds[k]!.weight, o)])));
  e.op('Sum', terms, {}, io.output);
  graph.nodes.push(...e.nodes);
  const out = first.graph.outputs.find((o) => o.name === io.output);
  graph.outputs = [{ name: io.output, dtype: 'float32', shape: out?.shape ?? null }];
  return {
    ...first,
    graph,
    opsetVersion: Math.max(...rounds.map((r) => r.forward.opsetVersion)),
    domainOpsets: Object.assign({}, ...rounds.map((r) => r.forward.domainOpsets ?? {})),
  };
}

// dg-math §4: the network's own time input for an LVP time τ
export function encodeDiscriminatorTime(tau: number, spec: DiscriminatorTimeSpec, lvp: LvpParams): number {
  switch (spec.kind) {
    case 't':
      return tau * spec.scale;
    case 'step':
      return Math.min(spec.steps - 1, Math.max(0, tau * spec.steps - 1)) * spec.scale;
    case 'sigma':
      return lvpSigmaVe(tau, lvp);
  }
}

export interface OnnxCriticOptions extends SessionOptions {
  name: string;
  io: { x: string; t: string };
  timeInput: DiscriminatorTimeSpec;
  timeDType: 'float32' | 'int64';
  coordinates: 'vp' | 've';
  lvp: LvpParams;
  source: string;
  /** for class-conditional discriminators: the class every item is judged as */
  classLabel?: number | null | undefined;
}

export async function createOnnxCritic(guidanceModel: Uint8Array, opts: OnnxCriticOptions): Promise<Critic & { dispose(): Promise<void> }> {
  const s = await createSession(guidanceModel, opts.source, opts);
  const gradName = gradOutputName(opts.io.x);
  const conditional = s.session.inputNames.includes('class_label');
  if (conditional && (opts.classLabel === null || opts.classLabel === undefined)) {
    throw new Error(`discriminator "${opts.name}" is class-conditional: give a class label (--class-label)`);
  }
  return {
    name: opts.name,
    async evaluate(xVp: Tensor, tauLvp: Float64Array) {
      const n = tauLvp.length;
      const per = xVp.data.length / n;
      // a VE-trained network sees x_ve = x_vp/α; its gradient maps back by 1/α
      const alpha = tauLvp.map((t) => (opts.coordinates === 've' ? lvpAlpha(t, opts.lvp) : 1));
      const x = opts.coordinates === 've' ? xVp.data.map((v, i) => v / alpha[Math.floor(i / per)]!) : xVp.data;
      const times = Array.from(tauLvp, (t) => encodeDiscriminatorTime(t, opts.timeInput, opts.lvp));
      const t =
        opts.timeDType === 'int64'
          ? new ort.Tensor(
              'int64',
              BigInt64Array.from(times, (v) => BigInt(Math.round(v))),
              [n],
            )
          : new ort.Tensor('float32', Float32Array.from(times), [n]);
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        const feeds: Record<string, ort.Tensor> = { [opts.io.x]: new ort.Tensor('float32', x, xVp.shape), [opts.io.t]: t };
        if (conditional) feeds['class_label'] = new ort.Tensor('int64', new BigInt64Array(n).fill(BigInt(opts.classLabel!)), [n]);
        out = await s.session.run(feeds);
      } catch (e) {
        throw new Error(`discriminator "${opts.name}" failed to run: ${(e as Error).message.split('\n')[0]}`, { cause: e });
      }
      const logRatio = out[LOG_RATIO_OUTPUT]!.data as Float32Array;
      const grad = new Float32Array(out[gradName]!.data as Float32Array);
      if (logRatio.length !== n)
        throw new Error(`discriminator "${opts.name}" returned ${logRatio.length} values for ${n} items; it must give one logit per item`);
      if (opts.coordinates === 've') for (let i = 0; i < grad.length; i++) grad[i]! /= alpha[Math.floor(i / per)]!;
      for (let i = 0; i < logRatio.length; i++) {
        if (!Number.isFinite(logRatio[i]!))
          throw new Error(`discriminator "${opts.name}" returned ${logRatio[i]} for item ${i} at τ=${tauLvp[i]!.toFixed(4)}`);
      }
      return { value: Float64Array.from(logRatio), grad: { data: grad, shape: [...xVp.shape] } };
    },
    dispose: () => s.session.release(),
  };
}

/** A critic from a forward discriminator with the trainer's conventions: inputs x (LVP) and t = τ, output logit. */
export function criticFromForward(
  forward: OnnxModel,
  name: string,
  session: SessionOptions = {},
): Promise<Critic & { dispose(): Promise<void> }> {
  return createOnnxCritic(serializeModel(buildGuidanceModel(forward, { x: 'x', output: 'logit' }, 'logit')), {
    ...session,
    name,
    io: { x: 'x', t: 't' },
    timeInput: { kind: 't', scale: 1 },
    timeDType: 'float32',
    coordinates: 'vp',
    lvp: LVP_DEFAULT,
    source: name,
  });
}
