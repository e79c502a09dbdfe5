/**
 * The toy case with a known answer (dg-math §7): Gaussian mixtures whose VP-diffused
 * densities stay mixtures, N(αμ, α²v + σ²) per component, so scores and the optimal
 * discriminator's log ratio are closed forms. Also builds their scores as real ONNX
 * graphs, so tests and demos exercise the ORT path end to end.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ScoreModelManifestInput } from '../../../shared/manifest.js';
import type { Critic } from '../sampling/guidance.js';
import { GraphBuilder } from '../onnx/builder.js';
import { serializeModel, tensorData } from '../onnx/ir.js';
import type { Rng } from '../rng.js';
import { alphaBarsFromBetas, ddpmLinearBetas, lvpAlpha, lvpSigma, type LvpParams, LVP_DEFAULT } from './schedules.js';
import type { Tensor } from '../tensor.js';

/** Isotropic Gaussian mixture: component k is N(means[k], variances[k]·I). */
export interface GaussianMixture {
  weights: number[];
  means: number[][];
  variances: number[];
}

export function mixtureDim(m: GaussianMixture): number {
  return m.means[0]!.length;
}

// dg-math §7: log p_t(x) and ∇x log p_t(x) of the VP-diffused mixture at (α, σ_vp)
export function diffusedLogDensityAndScore(
  m: GaussianMixture,
  x: ArrayLike<number>,
  alpha: number,
  sigmaVp: number,
): { logDensity: number; score: Float64Array } {
  const D = x.length;
  const K = m.weights.length;
  const logTerms = new Float64Array(K);
  const vars = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    const v = alpha * alpha * m.variances[k]! + sigmaVp * sigmaVp;
    vars[k] = v;
    let sq = 0;
    for (let d = 0; d < D; d++) sq += (x[d]! - alpha * m.means[k]![d]!) ** 2;
    logTerms[k] = Math.log(m.weights[k]!) - sq / (2 * v) - (D / 2) * Math.log(2 * Math.PI * v);
  }
  const maxLog = Math.max(...logTerms);
  let sum = 0;
  for (let k = 0; k < K; k++) sum += Math.exp(logTerms[k]! - maxLog);
  const logDensity = maxLog + Math.log(sum);
  const score = new Float64Array(D);
  for (let k = 0; k < K; k++) {
    const gamma = Math.exp(logTerms[k]! - logDensity);
    for (let d = 0; d < D; d++) score[d] = score[d]! - (gamma * (x[d]! - alpha * m.means[k]![d]!)) / vars[k]!;
  }
  return { logDensity, score };
}

/** A critic log a_τ(x) − log b_τ(x) + offset of two diffused mixtures, with its exact gradient. */
function densityDifferenceCritic(name: string, a: GaussianMixture, b: GaussianMixture, offset: number, lvp: LvpParams): Critic {
  return {
    name,
    exact: true,
    async evaluate(xVp: Tensor, tauLvp: Float64Array) {
      const N = xVp.shape[0]!;
      const D = xVp.data.length / N;
      const value = new Float64Array(N);
      const grad = new Float32Array(xVp.data.length);
      for (let n = 0; n < N; n++) {
        const xn = xVp.data.subarray(n * D, (n + 1) * D);
        const alpha = lvpAlpha(tauLvp[n]!, lvp);
        const s = lvpSigma(tauLvp[n]!, lvp);
        const la = diffusedLogDensityAndScore(a, xn, alpha, s);
        const lb = diffusedLogDensityAndScore(b, xn, alpha, s);
        value[n] = offset + la.logDensity - lb.logDensity;
        for (let d = 0; d < D; d++) grad[n * D + d] = la.score[d]! - lb.score[d]!;
      }
      return { value, grad: { data: grad, shape: [...xVp.shape] } };
    },
  };
}

/** The optimal discriminator of p (real) against q (fake): log r = log p_τ - log q_τ (dg-math §7). */
export function exactLogRatioCritic(p: GaussianMixture, q: GaussianMixture, lvp: LvpParams = LVP_DEFAULT): Critic {
  return densityDifferenceCritic('exact log(p_t/q_t)', p, q, 0, lvp);
}

/**
 * The exact noisy classifier of a mixture's components (dg-math §5, Eq. 6): component k is class k,
 * log p(y=k | x_τ) = log w_k + log N_k,τ(x) − log p_τ(x), its gradient score_k − score_p. Guiding the
 * mixture's own score with it at weight 1 samples component k alone.
 */
export function exactClassifierCritic(m: GaussianMixture, k: number, lvp: LvpParams = LVP_DEFAULT): Critic {
  const component: GaussianMixture = { weights: [1], variances: [m.variances[k]!], means: [m.means[k]!] };
  const logWeight = Math.log(m.weights[k]! / m.weights.reduce((x, y) => x + y, 0));
  return densityDifferenceCritic(`exact log p(y=${k} | x_t)`, component, m, logWeight, lvp);
}

export function sampleMixture(m: GaussianMixture, count: number, rng: Rng): Tensor {
  const D = mixtureDim(m);
  const data = new Float32Array(count * D);
  for (let n = 0; n < count; n++) {
    let u = rng.uniform();
    let k = 0;
    while (k < m.weights.length - 1 && u >= m.weights[k]!) u -= m.weights[k++]!;
    const sd = Math.sqrt(m.variances[k]!);
    for (let d = 0; d < D; d++) data[n * D + d] = m.means[k]![d]! + sd * rng.normal();
  }
  return { data, shape: [count, D] };
}

/** Which way the toy network is exported: exercises each parameterization and time input. */
export type ToyVariant =
  | { kind: 'lvp-eps'; lvp?: LvpParams }
  | { kind: 'ddpm-eps-step'; steps: number }
  | { kind: 'lvp-x0'; lvp?: LvpParams }
  | { kind: 'lvp-v'; lvp?: LvpParams }
  | { kind: 'edm-denoiser-sigma' }
  | { kind: 'edm-denoiser-cnoise' };

/**
 * An ONNX graph computing the exact diffused score of `m` in the form `variant` says.
 * `dataShape` lets an image-shaped Gaussian use the same graph (flattened inside).
 */
export function mixtureScoreOnnx(m: GaussianMixture, variant: ToyVariant, dataShape: number[] = [mixtureDim(m)]): Uint8Array {
  const D = mixtureDim(m);
  const K = m.weights.length;
  if (dataShape.reduce((a, b) => a * b, 1) !== D) throw new Error('dataShape does not match the mixture dimension');
  const g = new GraphBuilder('toy_mixture_score');
  const discrete = variant.kind === 'ddpm-eps-step';
  const x = g.input('x', 'float32', ['N', ...dataShape]);
  const t = g.input('t', discrete ? 'int64' : 'float32', ['N']);
  const flat = g.op('Flatten', [x], { axis: 1 }); // [N, D]
  const t1 = g.op('Unsqueeze', [t, g.int64s([1])]); // [N, 1]
  let alpha: string;
  let s2: string;
  if (variant.kind === 'ddpm-eps-step') {
    const ab = alphaBarsFromBetas(ddpmLinearBetas(variant.steps));
    const aTable = g.constant(tensorData('float32', [variant.steps], ab.map(Math.sqrt)));
    const s2Table = g.constant(
      tensorData(
        'float32',
        [variant.steps],
        ab.map((v) => 1 - v),
      ),
    );
    alpha = g.op('Gather', [aTable, t1]);
    s2 = g.op('Gather', [s2Table, t1]);
  } else if (variant.kind === 'edm-denoiser-sigma' || variant.kind === 'edm-denoiser-cnoise') {
    const sigma = variant.kind === 'edm-denoiser-sigma' ? t1 : g.op('Exp', [g.op('Mul', [t1, g.scalar(4)])]);
    alpha = g.op('Div', [sigma, sigma]); // ones, shaped [N, 1]
    s2 = g.op('Mul', [sigma, sigma]);
  } else {
    // dg-math §1: α = exp(-½B(t)), B = ½t²(β1-β0) + tβ0
    const p = variant.lvp ?? LVP_DEFAULT;
    const b = g.op('Add', [
      g.op('Mul', [g.op('Mul', [t1, t1]), g.scalar(0.5 * (p.betaMax - p.betaMin))]),
      g.op('Mul', [t1, g.scalar(p.betaMin)]),
    ]);
    alpha = g.op('Exp', [g.op('Mul', [b, g.scalar(-0.5)])]);
    s2 = g.op('Sub', [g.scalar(1), g.op('Mul', [alpha, alpha])]);
  }
  const mu = g.constant(tensorData('float32', [1, K, D], m.means.flat()));
  const v = g.constant(tensorData('float32', [1, K], m.variances));
  const logw = g.constant(tensorData('float32', [1, K], m.weights.map(Math.log)));
  const x3 = g.op('Unsqueeze', [flat, g.int64s([1])]); // [N, 1, D]
  const a3 = g.op('Unsqueeze', [alpha, g.int64s([2])]); // [N, 1, 1]
  const diff = g.op('Sub', [x3, g.op('Mul', [a3, mu])]); // [N, K, D]
  const variance = g.op('Add', [g.op('Mul', [g.op('Mul', [alpha, alpha]), v]), s2]); // [N, K]
  const sq = g.op('ReduceSum', [g.op('Mul', [diff, diff]), g.int64s([2])], { keepdims: 0 });
  const logits = g.op('Sub', [
    g.op('Sub', [logw, g.op('Mul', [g.op('Div', [sq, variance]), g.scalar(0.5)])]),
    g.op('Mul', [g.op('Log', [variance]), g.scalar(D / 2)]),
  ]);
  const gamma = g.op('Softmax', [logits], { axis: 1 });
  const coef = g.op('Unsqueeze', [g.op('Div', [gamma, variance]), g.int64s([2])]); // [N, K, 1]
  const score = g.op('Neg', [g.op('ReduceSum', [g.op('Mul', [coef, diff]), g.int64s([1])], { keepdims: 0 })]);
  const x0 = g.op('Div', [g.op('Add', [flat, g.op('Mul', [s2, score])]), alpha]); // (x + σ²s)/α
  const eps = g.op('Neg', [g.op('Mul', [g.op('Sqrt', [s2]), score])]); // -σ·s
  let out: string;
  switch (variant.kind) {
    case 'lvp-eps':
    case 'ddpm-eps-step':
      out = eps;
      break;
    case 'lvp-x0':
    case 'edm-denoiser-sigma':
    case 'edm-denoiser-cnoise':
      out = x0;
      break;
    case 'lvp-v': // v = α·ε - σ·x0
      out = g.op('Sub', [g.op('Mul', [alpha, eps]), g.op('Mul', [g.op('Sqrt', [s2]), x0])]);
      break;
  }
  g.op('Reshape', [out, g.int64s([-1, ...dataShape])], {}, 'out');
  g.output('out', 'float32', ['N', ...dataShape]);
  return serializeModel(g.build({ description: 'exact score of a Gaussian mixture (dg-math §7)' }));
}

export function toyManifest(name: string, variant: ToyVariant, dataShape: number[]): ScoreModelManifestInput {
  const base = { format: 'dg-studio/score-model@1' as const, name, onnx: 'model.onnx', io: {}, dataShape };
  switch (variant.kind) {
    case 'lvp-eps':
    case 'lvp-x0':
    case 'lvp-v': {
      const p = variant.lvp ?? LVP_DEFAULT;
      const prediction = ({ 'lvp-eps': 'eps', 'lvp-x0': 'x0', 'lvp-v': 'v' } as const)[variant.kind];
      return { ...base, prediction, schedule: { kind: 'lvp', ...p }, timeInput: { kind: 't' } };
    }
    case 'ddpm-eps-step':
      return {
        ...base,
        prediction: 'eps',
        timeDType: 'int64',
        schedule: { kind: 'ddpm-linear', steps: variant.steps },
        timeInput: { kind: 'step' },
      };
    case 'edm-denoiser-sigma':
      return { ...base, prediction: 'edm-denoiser', schedule: { kind: 'edm' }, timeInput: { kind: 'sigma' } };
    case 'edm-denoiser-cnoise':
      return { ...base, prediction: 'edm-denoiser', schedule: { kind: 'edm' }, timeInput: { kind: 'edm-c-noise' } };
  }
}

/** Write a toy score model (ONNX + manifest) into `dir`; returns the manifest path. */
export async function writeToyScoreModel(
  dir: string,
  m: GaussianMixture,
  variant: ToyVariant,
  opts: { name?: string; dataShape?: number[]; extra?: Partial<ScoreModelManifestInput> } = {},
): Promise<string> {
  const dataShape = opts.dataShape ?? [mixtureDim(m)];
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), mixtureScoreOnnx(m, variant, dataShape));
  const manifest = { ...toyManifest(opts.name ?? `toy ${variant.kind}`, variant, dataShape), ...opts.extra };
  const path = join(dir, 'manifest.json');
  await writeFile(path, JSON.stringify(manifest, null, 2));
  return path;
}
