/**
 * ONNX Runtime's fast CPU convolutions (MLAS "NCHWc": channels in blocks of 8 or 16) for convolutions
 * whose weights are fed or computed rather than constant. ORT rewrites a Conv into its
 * com.microsoft.nchwc ops only when the weight is an initializer (it reorders the filter once, at
 * session start), so a training graph — which feeds its weights — and a gradient graph — which computes
 * the flipped ones — ran every convolution on the slower im2col + GEMM path. The NCHWc Conv kernel itself
 * reads its filter as an ordinary input: this pass writes the filter's reorder into the graph (OIHW →
 * OIHWBiBo: a Reshape, a Transpose and a Reshape of a small tensor) and the layout conversions ORT would
 * insert around the convolution (its optimizer removes back-to-back ones). CPU only: the ops are ORT's
 * CPU kernels.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, type AttrInput } from './builder.js';
import { Emitter } from './emitter.js';
import { intAttr, intsAttr, parseModel, serializeModel, strAttr, tensorData, type OnnxModel, type OnnxNode } from './ir.js';
import type { SessionOptions } from './session.js';
import { inferShapes } from './shapes.js';

const NCHWC = 'com.microsoft.nchwc';

let probed: Promise<number | null> | null = null;

/**
 * The NCHWc channel block of this CPU (16 with AVX-512, 8 with AVX2), read from how ORT's own
 * optimizer rewrites a constant-weight convolution with 4 output channels (padded to one block); null
 * when ORT makes no NCHWc ops here.
 */
export function nchwcBlockSize(): Promise<number | null> {
  probed ??= (async () => {
    const g = new GraphBuilder('probe');
    const x = g.input('x', 'float32', [1, 32, 8, 8]);
    const w = g.constant(tensorData('float32', [4, 32, 3, 3], new Float32Array(4 * 32 * 9).fill(0.01)));
    g.op('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'y');
    g.output('y', 'float32', [1, 4, 8, 8]);
    const dir = mkdtempSync(join(tmpdir(), 'dg-nchwc-'));
    try {
      const file = join(dir, 'optimized.onnx');
      const s = await ort.InferenceSession.create(serializeModel(g.build()), { optimizedModelFilePath: file, logSeverityLevel: 3 });
      await s.release();
      const m = parseModel(readFileSync(file), 'NCHWc probe');
      const conv = m.graph.nodes.find((n) => n.domain === NCHWC && n.opType === 'Conv');
      const filter = conv && m.graph.initializers.get(conv.inputs[1]!);
      return filter ? filter.dims[0]! : null;
    } catch {
      return null;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return probed;
}

/**
 * Every 2-D, ungrouped Conv whose weight is not an initializer and whose input and output channels are
 * whole blocks becomes ReorderInput → NCHWc Conv (reordered filter) → ReorderOutput. Returns the model
 * and how many convolutions were rewritten.
 */
export function useNchwcConvs(model: OnnxModel, block: number): { model: OnnxModel; rewritten: number } {
  const graph = { ...model.graph, initializers: new Map(model.graph.initializers) };
  const shapes = inferShapes(graph, graph.nodes);
  const e = new Emitter(graph, 'nchwc/', shapes);
  const nchwc = (opType: string, inputs: string[], attrs: Record<string, AttrInput>, output?: string) => {
    const y = e.op(opType, inputs, attrs, output);
    e.nodes.at(-1)!.domain = NCHWC;
    return y;
  };
  const nodes: OnnxNode[] = [];
  let rewritten = 0;
  for (const node of model.graph.nodes) {
    const [x, w, b] = node.inputs as [string, string | undefined, string | undefined];
    const wShape = w ? shapes.get(w) : undefined;
    const fits =
      node.opType === 'Conv' &&
      node.domain === '' &&
      !model.graph.initializers.has(w!) &&
      wShape?.length === 4 &&
      wShape.every((d) => typeof d === 'number') &&
      intAttr(node, 'group', 1) === 1 &&
      (intsAttr(node, 'dilations') ?? []).every((d) => d === 1) &&
      strAttr(node, 'auto_pad', 'NOTSET') === 'NOTSET';
    const [O, C, kh, kw] = (wShape ?? []) as number[];
    if (!fits || O! % block !== 0 || C! % block !== 0) {
      nodes.push(node);
      continue;
    }
    rewritten++;
    // OIHW → [O/B, I/B, H, W, Bi, Bo]: MLAS's filter layout for blocked input and output channels
    const six = e.op('Reshape', [w!, e.i64([O! / block, block, C! / block, block, kh!, kw!])]);
    const filter = e.op('Reshape', [e.op('Transpose', [six], { perm: [0, 2, 4, 5, 3, 1] }), e.i64([O!, C!, kh!, kw!])]);
    const attrs: Record<string, AttrInput> = { kernel_shape: [kh!, kw!], group: 1 };
    for (const k of ['pads', 'strides'] as const) if (node.attrs[k]) attrs[k] = node.attrs[k];
    const xr = nchwc('ReorderInput', [x], { channels_last: 0 });
    const yr = nchwc('Conv', b ? [xr, filter, b] : [xr, filter], attrs);
    nchwc('ReorderOutput', [yr], { channels_last: 0, channels: O! }, node.outputs[0]);
    nodes.push(...e.nodes.splice(0));
  }
  return { model: { ...model, graph: { ...graph, nodes } }, rewritten };
}

/**
 * The rewrite where it applies — ONNX Runtime's CPU provider on a CPU with NCHWc kernels — for graphs
 * that feed their weights (training graphs, the trainers' forward passes); DG_STUDIO_NCHWC=0 turns it off.
 */
export async function withFedWeightNchwc(model: OnnxModel, session: SessionOptions = {}): Promise<OnnxModel> {
  if ((session.executionProvider ?? 'cpu') !== 'cpu' || process.env['DG_STUDIO_NCHWC'] === '0') return model;
  const block = await nchwcBlockSize();
  return block ? useNchwcConvs(model, block).model : model;
}
