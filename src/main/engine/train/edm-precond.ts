/**
 * EDM preconditioning for the app's score-model trainer (dg-math §9; Karras et al. 2022, Table 1), the recipe of
 * `tools/train-score-model.py --precond edm`: the U-Net is the F of D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise),
 * trained with ln σ ~ N(P_mean, P_std²) and EDM's λ(σ) — a unit-weight MSE of F against (x0 − c_skip·x)/c_out —
 * and exported, seen from outside, as the ε network of the DDPM steps (inputs x_t, integer step t; output ε̂), so
 * the app's samplers, checks and discriminator trainer take it unchanged. c_noise is the (fractional) DDPM step
 * of σ, so F's time embedding sees the same numbers as an ε U-Net's.
 */
import { edmPreconditioning } from '../models/parameterizations.js';
import { Emitter } from '../onnx/emitter.js';
import { tensorData, type OnnxModel } from '../onnx/ir.js';

/** σ_data of images in [-1, 1] (EDM's value; the PyTorch trainer's too). */
export const EDM_SIGMA_DATA = 0.5;

/** EDM's log-normal noise levels (dg-math §9), as the checkpoints of both trainers record them. */
export interface EdmNoiseLevels {
  pMean: number;
  pStd: number;
}

export const EDM_NOISE_DEFAULT: EdmNoiseLevels = { pMean: -1.2, pStd: 1.2 };

/** dg-math §1: the VE level of DDPM step i, σ_i = sqrt((1 − ᾱ_i)/ᾱ_i), as ln σ_i (rising with i). */
export function ddpmLogSigmas(alphaBars: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: alphaBars.length }, (_, i) => 0.5 * Math.log((1 - alphaBars[i]!) / alphaBars[i]!));
}

/**
 * The fractional DDPM step of a level ln σ within steps 0…hi: the two steps around it, linearly interpolated in
 * ln σ (clamped to the range) — F's time input during training (as the PyTorch trainer's searchsorted).
 */
export function fractionalStep(lnSigma: number, logSigmas: ArrayLike<number>, hi: number): number {
  if (lnSigma <= logSigmas[0]!) return 0;
  if (lnSigma >= logSigmas[hi]!) return hi;
  let lo = 0;
  let up = hi;
  while (up - lo > 1) {
    const mid = (lo + up) >> 1;
    if (logSigmas[mid]! <= lnSigma) lo = mid;
    else up = mid;
  }
  return lo + (lnSigma - logSigmas[lo]!) / (logSigmas[up]! - logSigmas[lo]!);
}

/**
 * One training item at level σ (dg-math §9): x = x0 + σ·n; F's input c_in·x and its target (x0 − c_skip·x)/c_out,
 * written into `input` and `target`.
 */
export function edmTrainingItem(x0: Float32Array, noise: Float32Array, sigma: number, input: Float32Array, target: Float32Array): void {
  const { cSkip, cOut, cIn } = edmPreconditioning(sigma, EDM_SIGMA_DATA);
  for (let i = 0; i < x0.length; i++) {
    const x = x0[i]! + sigma * noise[i]!;
    input[i] = cIn * x;
    target[i] = (x0[i]! - cSkip * x) / cOut;
  }
}

/**
 * F (inputs `x` float [N, C, H, W] and `t` [N], the step — fed here as float whatever F declares; output `out`)
 * wrapped as the ε network of the DDPM steps: inputs `x` (x_t = sqrt(ᾱ)·x0 + sqrt(1 − ᾱ)·ε) and `t` (int64 step); output `out` = ε̂ =
 * (x_ve − D)/σ with x_ve = x_t/sqrt(ᾱ_t), σ = σ_t (dg-math §1, §9). Written out: ε̂ = σ/(σ² + σ_data²)·x_ve −
 * σ_data/sqrt(σ² + σ_data²)·F(c_in·x_ve; t); each per-step coefficient is a table looked up by t.
 */
export function asEpsNetwork(f: OnnxModel, alphaBars: ArrayLike<number>): OnnxModel {
  const fx = f.graph.inputs.find((i) => i.name === 'x');
  if (!fx || !f.graph.inputs.some((i) => i.name === 't') || !f.graph.outputs.some((o) => o.name === 'out'))
    throw new Error('EDM preconditioning wraps a network with inputs x, t and output out');
  const inner = (name: string) => (name === 'x' ? 'edm/f_x' : name === 't' ? 'edm/f_t' : name === 'out' ? 'edm/f_out' : name);
  const fNodes = f.graph.nodes.map((n) => ({ ...n, inputs: n.inputs.map(inner), outputs: n.outputs.map(inner) }));
  const graph = {
    ...f.graph,
    nodes: [] as typeof f.graph.nodes,
    inputs: [...f.graph.inputs.filter((i) => i.name !== 'x' && i.name !== 't'), fx, { name: 't', dtype: 'int64' as const, shape: ['N'] }],
    outputs: f.graph.outputs.map((o) => (o.name === 'out' ? o : { ...o, name: inner(o.name) })),
    initializers: new Map(f.graph.initializers),
  };
  const n = alphaBars.length;
  const table = (coef: (sigma: number, abar: number) => number) =>
    tensorData(
      'float32',
      [n],
      Float32Array.from({ length: n }, (_, i) => coef(Math.sqrt((1 - alphaBars[i]!) / alphaBars[i]!), alphaBars[i]!)),
    );
  const sd2 = EDM_SIGMA_DATA * EDM_SIGMA_DATA;
  const pre = new Emitter(graph, 'edm/in/');
  // a per-step coefficient, shaped [N, 1, 1, 1] to scale the images
  const perItem = (e: Emitter, coef: (sigma: number, abar: number) => number) =>
    e.op('Unsqueeze', [e.op('Gather', [e.constant(table(coef)), 't'], { axis: 0 }), e.i64([1, 2, 3])]);
  const xVe = pre.op('Mul', ['x', perItem(pre, (_, ab) => 1 / Math.sqrt(ab))]);
  pre.op('Mul', [xVe, perItem(pre, (s) => edmPreconditioning(s, EDM_SIGMA_DATA).cIn)], {}, 'edm/f_x');
  pre.op('Cast', ['t'], { to: 1 }, 'edm/f_t');
  graph.nodes.push(...pre.nodes, ...fNodes);
  const post = new Emitter(graph, 'edm/out/');
  const skip = post.op('Mul', [xVe, perItem(post, (s) => s / (s * s + sd2))]);
  const fromF = post.op('Mul', ['edm/f_out', perItem(post, (s) => EDM_SIGMA_DATA / Math.sqrt(s * s + sd2))]);
  post.op('Sub', [skip, fromF], {}, 'out');
  graph.nodes.push(...post.nodes);
  return { ...f, graph };
}
