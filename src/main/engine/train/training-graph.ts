/**
 * Training graphs for discriminators (dg-math §4): the network's logit z, a density-ratio
 * loss, and the loss's gradient with respect to every weight, all in one ONNX model that
 * plain ONNX Runtime runs. Weights are graph inputs, fed each step from Float32Arrays.
 */
import { gradient, gradOutputName, initializersToInputs } from '../onnx/autodiff.js';
import { Emitter } from '../onnx/emitter.js';
import type { OnnxModel } from '../onnx/ir.js';

export type RatioLoss = 'bce' | 'lsif' | 'ukl';

export const LOSS_OUTPUT = 'loss';
export const LABEL_INPUT = 'label';
export const WEIGHT_INPUT = 'sample_weight';

/**
 * Per-sample loss with y = 1 for real, 0 for fake, z the logit, r = e^z = d/(1-d):
 *  BCE  (paper Eq. 4):      -y·log d - (1-y)·log(1-d) = softplus(z) - y·z
 *  LSIF (paper Sec. 6):     (1-y)·½r² - y·r
 *  UKL / KLIEP (App. B):    (1-y)·r - y·log r
 */
function perSampleLoss(e: Emitter, z: string, y: string, loss: RatioLoss): string {
  const one = e.scalarLike(1, z);
  const fake = e.op('Sub', [one, y]);
  switch (loss) {
    case 'bce':
      return e.op('Sub', [e.op('Softplus', [z]), e.op('Mul', [y, z])]);
    case 'lsif':
      return e.op('Sub', [
        e.op('Mul', [fake, e.op('Mul', [e.scalarLike(0.5, z), e.op('Exp', [e.op('Mul', [z, e.scalarLike(2, z)])])])]),
        e.op('Mul', [y, e.op('Exp', [z])]),
      ]);
    case 'ukl':
      return e.op('Sub', [e.op('Mul', [fake, e.op('Exp', [z])]), e.op('Mul', [y, z])]);
  }
}

/**
 * From a forward network (…, → logit [N, 1] or [N]) and its trainable initializers, a model
 * with inputs: the network's inputs, `label` [N], `sample_weight` [N] (λ(τ) or 1), every
 * weight; outputs: `loss` (weighted mean), the logit, and `grad_<weight>` for each weight.
 * With `r1Gamma` > 0 the loss adds R1 (dg-math §10): (γ/2)·mean over real items (label > ½) of
 * ‖∇x logit‖², its weight gradient taken through the input gradient (double backpropagation).
 */
export function buildTrainingModel(
  net: OnnxModel,
  logitOutput: string,
  params: string[],
  loss: RatioLoss,
  opts: { r1Gamma?: number; input?: string } = {},
): OnnxModel {
  const withInputs = initializersToInputs(net, params);
  const gamma = opts.r1Gamma ?? 0;
  const input = opts.input ?? 'x';
  // items are independent: the gradient of Σ logits is each item's own ∇x logit
  const base = gamma > 0 ? gradient(withInputs, { of: logitOutput, wrt: [input], gradName: () => R1_INPUT_GRAD }) : withInputs;
  const graph = { ...base.graph, nodes: [...base.graph.nodes], inputs: [...base.graph.inputs] };
  graph.inputs.push({ name: LABEL_INPUT, dtype: 'float32', shape: ['N'] }, { name: WEIGHT_INPUT, dtype: 'float32', shape: ['N'] });
  const model: OnnxModel = { ...base, graph };
  const e = new Emitter(graph, 'loss/');
  const z = e.op('Reshape', [logitOutput, e.i64([-1])]);
  const weighted = e.op('Mul', [perSampleLoss(e, z, LABEL_INPUT, loss), WEIGHT_INPUT]);
  const ratioLoss = e.op('ReduceMean', [weighted], { keepdims: 0 });
  if (gamma > 0) {
    const real = e.op('Cast', [e.op('Greater', [LABEL_INPUT, e.scalarLike(0.5, LABEL_INPUT)])], { to: 1 });
    const flat = e.op('Reshape', [R1_INPUT_GRAD, e.i64([0, -1])]);
    const sq = e.op('ReduceSum', [e.op('Mul', [flat, flat]), e.i64([1])], { keepdims: 0 });
    const perReal = e.op('Div', [
      e.op('ReduceSum', [e.op('Mul', [sq, real])], { keepdims: 0 }),
      e.op('Max', [e.op('ReduceSum', [real], { keepdims: 0 }), e.scalarLike(1, real)]),
    ]);
    e.op('Add', [ratioLoss, e.op('Mul', [perReal, e.scalarLike(gamma / 2, perReal)])], {}, LOSS_OUTPUT);
  } else e.op('Identity', [ratioLoss], {}, LOSS_OUTPUT);
  graph.nodes.push(...e.nodes);
  graph.outputs = [...graph.outputs.filter((o) => o.name === logitOutput), { name: LOSS_OUTPUT, dtype: 'float32', shape: [] }];
  return gradient(model, { of: LOSS_OUTPUT, wrt: params });
}

/** The input gradient an R1 training graph computes on the way (not an output). */
const R1_INPUT_GRAD = 'r1_grad_x';

export { gradOutputName };

export const TARGET_INPUT = 'target';

/**
 * The score model's training graph (DDPM's simple loss, dg-math §1–2): from a network
 * `x_t, t → ε̂` and its trainable initializers, a model with inputs `x` (the noised batch),
 * `t`, `target` (the ε that made it) and every weight; outputs `loss` = mean (ε̂ − ε)² over all
 * elements and `grad_<weight>` for each weight.
 */
export function buildScoreTrainingModel(net: OnnxModel, outputName: string, params: string[]): OnnxModel {
  const withInputs = initializersToInputs(net, params);
  const out = net.graph.outputs.find((o) => o.name === outputName);
  if (!out) throw new Error(`the network has no output "${outputName}"`);
  const graph = { ...withInputs.graph, nodes: [...withInputs.graph.nodes], inputs: [...withInputs.graph.inputs] };
  graph.inputs.push({ name: TARGET_INPUT, dtype: 'float32', shape: out.shape });
  const e = new Emitter(graph, 'loss/');
  const diff = e.op('Sub', [outputName, TARGET_INPUT]);
  e.op('ReduceMean', [e.op('Mul', [diff, diff])], { keepdims: 0 }, LOSS_OUTPUT);
  graph.nodes.push(...e.nodes);
  graph.outputs = [{ name: LOSS_OUTPUT, dtype: 'float32', shape: [] }];
  return gradient({ ...withInputs, graph }, { of: LOSS_OUTPUT, wrt: params });
}
