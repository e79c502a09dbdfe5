/**
 * Reverse-mode differentiation of ONNX graphs into ONNX graphs made of standard ops only.
 * The result computes the forward pass once and reuses its activations in the backward
 * pass; plain ONNX Runtime (any build, any execution provider) runs it.
 */
import { decompose, DECOMPOSABLE } from './decompose.js';
import { Emitter } from './emitter.js';
import { unsupported, type Grads } from './grad-rule.js';
import { GRAD_RULES, NON_DIFFERENTIABLE } from './grad-rules.js';
import { inferShapes } from './shapes.js';
import { groupNormUnits, groupNormVjp, siluUnits, siluVjp } from './units.js';
import { FLOAT_DTYPES, type OnnxGraph, type OnnxModel, type OnnxNode, type ValueInfo } from './ir.js';

export interface GradientOptions {
  /** the value to differentiate (usually a graph output) */
  of: string;
  /** graph inputs and/or initializers to differentiate with respect to */
  wrt: string[];
  /**
   * 'ones': the gradient of Σ of (per-item gradients when items are independent);
   * 'input': a vector–Jacobian product with a new input named `${of}_grad_seed`.
   */
  seed?: 'ones' | 'input';
  /** output name of each gradient; default `grad_<name>` */
  gradName?: (wrt: string) => string;
}

export const gradOutputName = (wrt: string) => `grad_${wrt}`;

/** Nodes in an order where every input is produced before use (Kahn's algorithm). */
export function topoSort(graph: OnnxGraph): OnnxNode[] {
  const available = new Set<string>(['', ...graph.inputs.map((i) => i.name), ...graph.initializers.keys()]);
  const pending = [...graph.nodes];
  const out: OnnxNode[] = [];
  while (pending.length) {
    const before = pending.length;
    for (let i = 0; i < pending.length;) {
      const n = pending[i]!;
      if (n.inputs.every((x) => available.has(x))) {
        out.push(n);
        n.outputs.forEach((o) => available.add(o));
        pending.splice(i, 1);
      } else i++;
    }
    if (pending.length === before) {
      const n = pending[0]!;
      throw new Error(
        `graph "${graph.name}": node "${n.name}" (${n.opType}) uses ${n.inputs.filter((x) => !available.has(x)).join(', ')}, which nothing produces`,
      );
    }
  }
  return out;
}

function diffInputs(node: OnnxNode): number[] {
  if (NON_DIFFERENTIABLE.has(node.opType)) return [];
  if (DECOMPOSABLE.has(node.opType)) return node.opType === 'BatchNormalization' ? [0, 1, 2, 3, 4] : [0, 1, 2];
  const rule = GRAD_RULES[node.opType];
  return rule?.diffInputs ? rule.diffInputs(node) : node.inputs.map((_, i) => i);
}

/** Values that depend on `wrt` and that `of` depends on, through differentiable slots. */
function activity(nodes: OnnxNode[], wrt: string[], of: string): { forward: Set<string>; active: Set<string> } {
  const forward = new Set(wrt);
  for (const n of nodes) {
    if (diffInputs(n).some((i) => forward.has(n.inputs[i] ?? ''))) n.outputs.forEach((o) => o && forward.add(o));
  }
  const backward = new Set([of]);
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k]!;
    if (n.outputs.some((o) => backward.has(o))) for (const i of diffInputs(n)) if (n.inputs[i]) backward.add(n.inputs[i]!);
  }
  const active = new Set([...forward].filter((v) => backward.has(v)));
  return { forward, active };
}

function cloneGraph(g: OnnxGraph): OnnxGraph {
  return {
    name: g.name,
    nodes: [...g.nodes],
    inputs: [...g.inputs],
    outputs: [...g.outputs],
    initializers: new Map(g.initializers),
  };
}

/** An input's or initializer's type, for checking `wrt` and typing the gradient outputs. */
function valueInfoOf(graph: OnnxGraph, name: string): ValueInfo | undefined {
  const input = graph.inputs.find((i) => i.name === name);
  if (input) return input;
  const init = graph.initializers.get(name);
  return init ? { name, dtype: init.dtype, shape: init.dims } : undefined;
}

function checkGradientRequest(model: OnnxModel, graph: OnnxGraph, nodes: OnnxNode[], opts: GradientOptions): void {
  if (model.opsetVersion < 13) {
    throw new Error(
      `gradient graphs need ONNX opset ≥ 13; this model uses opset ${model.opsetVersion}: re-export it (torch.onnx.export(..., opset_version=17))`,
    );
  }
  for (const w of opts.wrt) {
    const info = valueInfoOf(graph, w);
    if (!info) throw new Error(`cannot differentiate with respect to "${w}": it is neither an input nor an initializer of "${graph.name}"`);
    if (!FLOAT_DTYPES.has(info.dtype))
      throw new Error(`cannot differentiate with respect to "${w}": it is ${info.dtype}, not floating point`);
  }
  if (!nodes.some((n) => n.outputs.includes(opts.of)) && !graph.inputs.some((i) => i.name === opts.of)) {
    throw new Error(`"${opts.of}" is not a value of graph "${graph.name}"`);
  }
}

/**
 * Step 1: the normalizations on the differentiated path decomposed into primitives (InstanceNormalization
 * of a known rank has its own rule, which keeps ORT's fused forward kernel).
 */
function decomposeActive(graph: OnnxGraph, nodes: OnnxNode[], opts: GradientOptions, opset: number): OnnxNode[] {
  const first = activity(nodes, opts.wrt, opts.of);
  const shapes0 = inferShapes(graph, nodes);
  const decomposes = (n: OnnxNode) =>
    DECOMPOSABLE.has(n.opType) &&
    n.outputs.some((o) => first.active.has(o)) &&
    !(n.opType === 'InstanceNormalization' && shapes0.get(n.inputs[0]!)?.length !== undefined);
  if (!nodes.some(decomposes)) return nodes;
  const fwd = new Emitter(graph, 'dec/', shapes0);
  const rewritten: OnnxNode[] = [];
  for (const n of nodes) {
    if (decomposes(n)) {
      const start = fwd.nodes.length;
      decompose(fwd, n, opset);
      rewritten.push(...fwd.nodes.slice(start));
    } else rewritten.push(n);
  }
  return rewritten;
}

/** Each value's gradient contributions, summed (one Sum node) when first read. */
class Contributions {
  private readonly map = new Map<string, string[]>();
  constructor(private readonly e: Emitter) {}
  add(v: string, g: string): void {
    const list = this.map.get(v);
    if (list) list.push(g);
    else this.map.set(v, [g]);
  }
  total(v: string): string | undefined {
    const list = this.map.get(v);
    if (!list?.length) return undefined;
    if (list.length === 1) return list[0];
    const s = this.e.op('Sum', list);
    this.map.set(v, [s]);
    return s;
  }
}

/** The reverse sweep's seed: ones of the output's shape, or a graph input (a vector-Jacobian product). */
function seedGradient(graph: OnnxGraph, e: Emitter, grads: Contributions, opts: GradientOptions): void {
  if ((opts.seed ?? 'ones') === 'input') {
    const info = graph.outputs.find((o) => o.name === opts.of);
    const seedName = `${opts.of}_grad_seed`;
    graph.inputs.push({ name: seedName, dtype: info?.dtype ?? 'float32', shape: info?.shape ?? null });
    grads.add(opts.of, seedName);
  } else {
    const ones = e.op('ConstantOfShape', [e.shape(opts.of)], {
      value: { type: 'tensor', value: { dtype: 'float32', dims: [1], data: Float32Array.from([1]) } },
    });
    grads.add(opts.of, e.likeFloat(ones, opts.of));
  }
}

/** Step 2: nodes in reverse order, each active one's vector-Jacobian product added to its inputs' gradients. */
function reverseSweep(graph: OnnxGraph, nodes: OnnxNode[], e: Emitter, grads: Contributions, opts: GradientOptions): void {
  const { forward, active } = activity(nodes, opts.wrt, opts.of);
  // multi-node units differentiated as one (engine/onnx/units.ts); their interior nodes get no gradient
  const silu = siluUnits(nodes, graph);
  const groupNorms = groupNormUnits(nodes, graph, e);
  const wants = (v: string) => forward.has(v) && active.has(v);
  for (let k = nodes.length - 1; k >= 0; k--) {
    const node = nodes[k]!;
    if (!node.outputs.some((o) => active.has(o))) continue;
    const gOut: Grads = node.outputs.map((o) => (active.has(o) ? grads.total(o) : undefined));
    if (gOut.every((g) => g === undefined)) continue;
    const diff = new Set(diffInputs(node));
    const need = node.inputs.map((x, i) => diff.has(i) && !!x && wants(x));
    if (!need.some(Boolean)) continue;
    const sil = silu.get(node);
    if (sil && wants(sil.x)) {
      grads.add(sil.x, siluVjp(e, sil, node.outputs[0]!, gOut[0]!));
      continue;
    }
    const gn = groupNorms.get(node);
    if (gn) {
      const d = groupNormVjp(e, gn, gOut[0]!, { x: wants(gn.x), gamma: wants(gn.gamma), beta: wants(gn.beta) });
      if (d.x) grads.add(gn.x, d.x);
      if (d.gamma) grads.add(gn.gamma, d.gamma);
      if (d.beta) grads.add(gn.beta, d.beta);
      continue;
    }
    const rule = GRAD_RULES[node.opType];
    if (!rule || node.domain) throw unsupported(node, `the op ${node.domain ? `${node.domain}.` : ''}${node.opType} has no gradient rule`);
    const vjp = rule.vjp(e, node, gOut, need);
    node.inputs.forEach((x, i) => {
      const g = vjp[i];
      if (need[i] && g) grads.add(x, g);
    });
  }
}

export function gradient(model: OnnxModel, opts: GradientOptions): OnnxModel {
  const graph = cloneGraph(model.graph);
  const sorted = topoSort(graph);
  checkGradientRequest(model, graph, sorted, opts);
  const opset = Math.max(17, model.opsetVersion);
  const nodes = decomposeActive(graph, sorted, opts, opset);
  graph.nodes = nodes;
  const e = new Emitter(graph, 'grad/', inferShapes(graph, nodes));
  const grads = new Contributions(e);
  seedGradient(graph, e, grads, opts);
  reverseSweep(graph, nodes, e, grads, opts);
  // 3. outputs: one per `wrt`, zeros where the output does not depend on it
  const gradName = opts.gradName ?? gradOutputName;
  for (const w of opts.wrt) {
    const g = grads.total(w) ?? e.zerosLike(w);
    const name = gradName(w);
    e.op('Identity', [g], {}, name);
    const info = valueInfoOf(graph, w)!;
    graph.outputs.push({ name, dtype: info.dtype, shape: info.shape });
  }
  graph.nodes = [...nodes, ...e.nodes];
  return { ...model, graph, opsetVersion: opset };
}

/** Turn initializers into graph inputs (weights fed at run time, e.g. for training). */
export function initializersToInputs(model: OnnxModel, names: string[]): OnnxModel {
  const graph = cloneGraph(model.graph);
  for (const n of names) {
    const t = graph.initializers.get(n);
    if (!t) throw new Error(`"${n}" is not an initializer of "${graph.name}"`);
    graph.initializers.delete(n);
    graph.inputs.push({ name: n, dtype: t.dtype, shape: t.dims });
  }
  return { ...model, graph };
}
