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
 */
export function buildTrainingModel(net: OnnxModel, logitOutput: string, params: string[], loss: RatioLoss): OnnxModel {
  const withInputs = initializersToInputs(net, params);
  const graph = { ...withInputs.graph, nodes: [...withInputs.graph.nodes], inputs: [...withInputs.graph.inputs] };
  graph.inputs.push({ name: LABEL_INPUT, dtype: 'float32', shape: ['N'] }, { name: WEIGHT_INPUT, dtype: 'float32', shape: ['N'] });
  const model: OnnxModel = { ...withInputs, graph };
  const e = new Emitter(graph, 'loss/');
  const z = e.op('Reshape', [logitOutput, e.i64([-1])]);
  const weighted = e.op('Mul', [perSampleLoss(e, z, LABEL_INPUT, loss), WEIGHT_INPUT]);
  e.op('ReduceMean', [weighted], { keepdims: 0 }, LOSS_OUTPUT);
  graph.nodes.push(...e.nodes);
  graph.outputs = [...graph.outputs.filter((o) => o.name === logitOutput), { name: LOSS_OUTPUT, dtype: 'float32', shape: [] }];
  return gradient(model, { of: LOSS_OUTPUT, wrt: params });
}

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
