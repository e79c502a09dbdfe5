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
import { GraphBuilder } from './builder.js';
import { parseModel, serializeModel, tensorData, type Attr, type OnnxModel, type OnnxNode } from './ir.js';
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

const ints = (node: OnnxNode, name: string): number[] | undefined => {
  const a = node.attrs[name];
  return a?.type === 'ints' ? a.value : undefined;
};

/**
 * Every 2-D, ungrouped Conv whose weight is not an initializer and whose input and output channels are
 * whole blocks becomes ReorderInput → NCHWc Conv (reordered filter) → ReorderOutput. Returns the model
 * and how many convolutions were rewritten.
 */
export function useNchwcConvs(model: OnnxModel, block: number): { model: OnnxModel; rewritten: number } {
  const graph = model.graph;
  const shapes = inferShapes(graph, graph.nodes);
  const initializers = new Map(graph.initializers);
  const int64s = (name: string, values: number[]) => {
    initializers.set(name, tensorData('int64', [values.length], values));
    return name;
  };
  const nodes: OnnxNode[] = [];
  let rewritten = 0;
  for (const node of graph.nodes) {
    const [x, w, b] = node.inputs;
    const wShape = w ? shapes.get(w) : undefined;
    const group = node.attrs['group'];
    const dilations = ints(node, 'dilations');
    const fits =
      node.opType === 'Conv' &&
      node.domain === '' &&
      !graph.initializers.has(w!) &&
      wShape?.length === 4 &&
      wShape.every((d) => typeof d === 'number') &&
      (group === undefined || (group.type === 'int' && group.value === 1)) &&
      (dilations === undefined || dilations.every((d) => d === 1)) &&
      (node.attrs['auto_pad'] === undefined || (node.attrs['auto_pad'].type === 'string' && node.attrs['auto_pad'].value === 'NOTSET'));
    const [O, C, kh, kw] = (wShape ?? []) as number[];
    if (!fits || O! % block !== 0 || C! % block !== 0) {
      nodes.push(node);
      continue;
    }
    const p = `nchwc/${rewritten++}/`;
    const blocked = `${p}filter_blocks`;
    const filter = `${p}filter`;
    const xr = `${p}x`;
    const yr = `${p}y`;
    const attrs: Record<string, Attr> = { kernel_shape: { type: 'ints', value: [kh!, kw!] }, group: { type: 'int', value: 1 } };
    for (const k of ['pads', 'strides'] as const) if (node.attrs[k]) attrs[k] = node.attrs[k];
    // OIHW → [O/B, I/B, H, W, Bi, Bo]: MLAS's filter layout for blocked input and output channels
    const six = `${p}six`;
    nodes.push(
      {
        name: `${p}split`,
        opType: 'Reshape',
        domain: '',
        inputs: [w!, int64s(`${p}split_shape`, [O! / block, block, C! / block, block, kh!, kw!])],
        outputs: [six],
        attrs: {},
      },
      {
        name: `${p}order`,
        opType: 'Transpose',
        domain: '',
        inputs: [six],
        outputs: [blocked],
        attrs: { perm: { type: 'ints', value: [0, 2, 4, 5, 3, 1] } },
      },
      {
        name: `${p}merge`,
        opType: 'Reshape',
        domain: '',
        inputs: [blocked, int64s(`${p}merge_shape`, [O!, C!, kh!, kw!])],
        outputs: [filter],
        attrs: {},
      },
      {
        name: `${p}in`,
        opType: 'ReorderInput',
        domain: NCHWC,
        inputs: [x!],
        outputs: [xr],
        attrs: { channels_last: { type: 'int', value: 0 } },
      },
      { name: `${p}conv`, opType: 'Conv', domain: NCHWC, inputs: b ? [xr, filter, b] : [xr, filter], outputs: [yr], attrs },
      {
        name: `${p}out`,
        opType: 'ReorderOutput',
        domain: NCHWC,
        inputs: [yr],
        outputs: [node.outputs[0]!],
        attrs: { channels_last: { type: 'int', value: 0 }, channels: { type: 'int', value: O! } },
      },
    );
  }
  return { model: { ...model, graph: { ...graph, nodes, initializers } }, rewritten };
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
