/**
 * Classifier guidance (paper Eq. 6, dg-math §5) against closed forms. The toy's classes are the
 * mixture's components, so the exact noisy classifier is known: log p(y=k | x_τ) = log w_k +
 * log N_k,τ(x) − log p_τ(x). Then s_q + ∇log p(y|x) is the score of q's component y (Bayes), and
 * s_q + ∇log(p/q) + ∇log p_p(y|x) is the score of p's component y — sampling must give those.
 * Bounds: N = 2000 samples; the other mode's true share is ~0 (its posterior mass is below 1e-6
 * away from the boundary), so 1 % leaves room for the sampler's error; a mode's variance from 2000
 * points has relative standard error sqrt(2/2000) ≈ 0.03, allowed 25 % for the discretization.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadClassifier } from '../../src/main/engine/models/classifier.js';
import { classifierGuidance, combineGuidance, discriminatorGuidance } from '../../src/main/engine/sampling/guidance.js';
import { GraphBuilder } from '../../src/main/engine/onnx/builder.js';
import { serializeModel, tensorData } from '../../src/main/engine/onnx/ir.js';
import { BatchRng, Rng } from '../../src/main/engine/rng.js';
import { loadScoreModel } from '../../src/main/engine/models/score-model.js';
import { sdedit } from '../../src/main/engine/sampling/sdedit.js';
import {
  exactClassifierCritic,
  exactLogRatioCritic,
  writeToyScoreModel,
  type GaussianMixture,
} from '../../src/main/engine/models/toy-mixture.js';
import { tempDir } from '../helpers/tmp.js';
import { modeStats, P, Q } from '../helpers/toy.js';

const N = 2000;

/** The exact class posterior of a 2-D mixture as an ONNX graph (x_vp [N, 2], LVP τ [N] → logits [N, K]). */
function posteriorOnnx(m: GaussianMixture): Uint8Array {
  const g = new GraphBuilder('gaussian-classes');
  const x = g.input('x', 'float32', ['N', 2]);
  const t = g.input('t', 'float32', ['N']);
  const f = (v: number) => g.scalar(v);
  // dg-math §1: α(τ) = exp(−¼τ²(β1−β0) − ½τβ0), β0 = 0.1, β1 = 20; σ² = 1 − α²
  const expo = g.op('Add', [g.op('Mul', [g.op('Mul', [t, t]), f(-(20 - 0.1) / 4)]), g.op('Mul', [t, f(-0.1 / 2)])]);
  const a = g.op('Unsqueeze', [g.op('Exp', [expo]), g.constant(tensorData('int64', [1], [1]))]);
  const a2 = g.op('Mul', [a, a]);
  const logits = m.weights.map((w, k) => {
    const mu = g.constant(tensorData('float32', [1, 2], m.means[k]!));
    const diff = g.op('Sub', [x, g.op('Mul', [a, mu])]);
    const sq = g.op('ReduceSum', [g.op('Mul', [diff, diff]), g.constant(tensorData('int64', [1], [1]))], { keepdims: 1 });
    const v = g.op('Add', [g.op('Mul', [a2, f(m.variances[k]!)]), g.op('Sub', [f(1), a2])]);
    const quad = g.op('Div', [sq, g.op('Mul', [v, f(2)])]);
    return g.op('Sub', [g.op('Sub', [f(Math.log(w)), quad]), g.op('Log', [v])]); // −(D/2)·log v with D = 2
  });
  g.op('Concat', logits, { axis: 1 }, 'logits');
  g.output('logits', 'float32', ['N', m.weights.length]);
  return serializeModel(g.build());
}

describe('classifier guidance (paper Eq. 6) on the Gaussian-mixture toy', async () => {
  const dir = await tempDir();
  const model = await loadScoreModel(await writeToyScoreModel(join(dir, 'q'), Q, { kind: 'lvp-eps' }));
  const sample = async (guidance: Parameters<typeof sdedit>[4]['guidance'], seed: number) =>
    sdedit(
      model.denoiser(),
      model.schedule,
      { data: new Float32Array(N * 2), shape: [N, 2] },
      { t0: 1, steps: 40, sampler: 'heun' },
      {
        rng: BatchRng.consecutive(seed, N),
        guidance,
      },
    );

  it("q's score + the exact classifier for class 0 (w = 1) samples q's component 0 alone", async () => {
    const out = await sample(classifierGuidance(exactClassifierCritic(Q, 0), 1), 31);
    const s = modeStats(out.data, Q);
    expect(s.weight0).toBeGreaterThan(0.99);
    expect(Math.abs(s.variance[0] / Q.variances[0]! - 1)).toBeLessThan(0.25);
  });

  it("DG toward p plus p's classifier for class 1 (w_DG = w_CG = 1) samples p's component 1: the terms add", async () => {
    const hook = combineGuidance(
      discriminatorGuidance(exactLogRatioCritic(P, Q), N, { w1: 1, w2: 1, window: [1e-5, 1] }),
      classifierGuidance(exactClassifierCritic(P, 1), 1),
    );
    const out = await sample(hook, 32);
    const s = modeStats(out.data, P);
    expect(s.weight0).toBeLessThan(0.01);
    expect(Math.abs(s.variance[1] / P.variances[1]! - 1)).toBeLessThan(0.25);
  });

  it('an ONNX classifier, differentiated by the project, gives the exact log p(y|x) and gradient; a class is chosen by index or name', async () => {
    const folder = join(dir, 'cls');
    await mkdir(folder);
    await writeFile(join(folder, 'model.onnx'), posteriorOnnx(P));
    await writeFile(
      join(folder, 'manifest.json'),
      JSON.stringify({
        format: 'dg-studio/classifier@1',
        name: 'toy classes',
        onnx: 'model.onnx',
        dataShape: [2],
        classes: ['left', 'right'],
      }),
    );
    const rng = new Rng(5);
    const x = { data: Float32Array.from({ length: 16 }, () => 1.5 * rng.normal()), shape: [8, 2] };
    const tau = Float64Array.from({ length: 8 }, (_, i) => 0.05 + 0.12 * i);
    for (const [label, k] of [
      ['right', 1],
      [0, 0],
    ] as const) {
      const c = await loadClassifier(folder, label);
      const got = await c.critic.evaluate(x, tau);
      const want = await exactClassifierCritic(P, k).evaluate(x, tau);
      got.value.forEach((v, i) => expect(v).toBeCloseTo(want.value[i]!, 4));
      got.grad.data.forEach((v, i) => expect(v).toBeCloseTo(want.grad.data[i]!, 3));
      await c.dispose();
    }
    await expect(loadClassifier(folder, 'middle')).rejects.toThrow(/knows the classes 0 \(left\), 1 \(right\); got "middle"/);
  });
});
