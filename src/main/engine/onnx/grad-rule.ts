/**
 * What a gradient rule is (autodiff.ts applies them in the reverse sweep): the input slots gradient flows
 * through and the vector–Jacobian product, emitted as ONNX nodes; helpers the rule tables share.
 */
import type { Emitter } from './emitter.js';
import type { OnnxNode } from './ir.js';

export type Grads = (string | undefined)[];

export interface GradRule {
  /** input slots through which gradient flows (default: all) */
  diffInputs?: (node: OnnxNode) => number[];
  vjp(e: Emitter, node: OnnxNode, gOut: Grads, need: boolean[]): Grads;
}

export function unsupported(node: OnnxNode, why: string): Error {
  return new Error(`cannot differentiate ${node.opType} node "${node.name}": ${why}`);
}

export const first = () => [0];
export const unary = (f: (e: Emitter, x: string, y: string, g: string, node: OnnxNode) => string): GradRule => ({
  diffInputs: first,
  vjp: (e, node, [g]) => [f(e, node.inputs[0]!, node.outputs[0]!, g!, node)],
});
