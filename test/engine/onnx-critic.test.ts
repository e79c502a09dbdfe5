import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDiscriminator } from '../../src/main/engine/models/discriminator.js';
import { discriminatorGuidance, type Critic } from '../../src/main/engine/sampling/guidance.js';
import { buildGuidanceModel, createOnnxCritic, criticFromForward } from '../../src/main/engine/models/onnx-critic.js';
import { GraphBuilder } from '../../src/main/engine/onnx/builder.js';
import { serializeModel } from '../../src/main/engine/onnx/ir.js';
import { BatchRng } from '../../src/main/engine/rng.js';
import { loadScoreModel } from '../../src/main/engine/models/score-model.js';
import { LVP_DEFAULT, lvpAlpha, lvpSigma } from '../../src/main/engine/models/schedules.js';
import { sdedit } from '../../src/main/engine/sampling/sdedit.js';
import { writeToyScoreModel } from '../../src/main/engine/models/toy-mixture.js';
import { tempDir } from '../helpers/tmp.js';

/** α(τ) and σ²(τ) of LVP inside a graph, from t [N] → [N, 1]. */
function lvpCoeffs(g: GraphBuilder, t: string) {
  const p = LVP_DEFAULT;
  const t1 = g.op('Unsqueeze', [t, g.int64s([1])]);
  const b = g.op('Add', [
    g.op('Mul', [g.op('Mul', [t1, t1]), g.scalar(0.5 * (p.betaMax - p.betaMin))]),
    g.op('Mul', [t1, g.scalar(p.betaMin)]),
  ]);
  const alpha = g.op('Exp', [g.op('Mul', [b, g.scalar(-0.5)])]);
  return { alpha, s2: g.op('Sub', [g.scalar(1), g.op('Mul', [alpha, alpha])]) };
}

/**
 * The exact log ratio of two diffused isotropic Gaussians N(0, v·I) (real) and N(0, u·I)
 * (fake) as an ONNX "discriminator" logit: log p_τ(x) - log q_τ(x) (dg-math §7).
 */
function gaussianRatioDiscriminator(v: number, u: number, dim: number) {
  const g = new GraphBuilder('ratio');
  const x = g.input('x', 'float32', ['N', dim]);
  const t = g.input('t', 'float32', ['N']);
  const { alpha, s2 } = lvpCoeffs(g, t);
  const a2 = g.op('Mul', [alpha, alpha]);
  const sq = g.op('ReduceSum', [g.op('Mul', [x, x]), g.int64s([1])], { keepdims: 1 });
  const logDensity = (variance: number) => {
    const total = g.op('Add', [g.op('Mul', [a2, g.scalar(variance)]), s2]);
    return g.op('Sub', [
      g.op('Neg', [g.op('Div', [sq, g.op('Mul', [total, g.scalar(2)])])]),
      g.op('Mul', [g.op('Log', [total]), g.scalar(dim / 2)]),
    ]);
  };
  g.op('Sub', [logDensity(v), logDensity(u)], {}, 'logit');
  g.output('logit', 'float32', ['N', 1]);
  return g.build();
}

/**
 * The per-coordinate variance of 2,000 samples guided from pure noise (t0 1, Heun 30) with w = 1 on `critic`; an
 * exact ratio reaches |log r| > 11.5 for outliers at small τ: no clipping here (a trained d is clipped).
 */
async function guidedVariance(model: Awaited<ReturnType<typeof loadScoreModel>>, critic: Critic, N = 2000): Promise<number> {
  const guidance = discriminatorGuidance(critic, N, { w1: 1, w2: 1, window: [1e-5, 1], logRatioClip: Infinity });
  const out = await sdedit(
    model.denoiser(),
    model.schedule,
    { data: new Float32Array(2 * N), shape: [N, 2] },
    { t0: 1, steps: 30, sampler: 'heun' },
    { rng: BatchRng.consecutive(1, N), guidance },
  );
  return out.data.reduce((a, v) => a + v * v, 0) / (2 * N);
}

describe('ONNX discriminators for guidance (dg-math §4)', async () => {
  const dir = await tempDir();

  it('the guidance graph returns log r and ∇x log r in one run, matching the closed form', async () => {
    const critic = await criticFromForward(gaussianRatioDiscriminator(0.05, 0.15, 2), 'ratio');
    const x = { data: Float32Array.from([0.3, -0.5, 1.2, 0.1]), shape: [2, 2] };
    const tau = Float64Array.from([0.1, 0.6]);
    const { value, grad } = await critic.evaluate(x, tau);
    for (let n = 0; n < 2; n++) {
      const a = lvpAlpha(tau[n]!);
      const s = lvpSigma(tau[n]!);
      const [vp, vq] = [a * a * 0.05 + s * s, a * a * 0.15 + s * s];
      const sq = x.data[2 * n]! ** 2 + x.data[2 * n + 1]! ** 2;
      expect(value[n]).toBeCloseTo(-sq / (2 * vp) - Math.log(vp) + sq / (2 * vq) + Math.log(vq), 4);
      for (let k = 0; k < 2; k++) expect(grad.data[2 * n + k]).toBeCloseTo(-x.data[2 * n + k]! / vp + x.data[2 * n + k]! / vq, 4);
    }
    await critic.dispose();
  });

  it('probability outputs: log(d/(1-d)) with d clipped, gradient zero where clipped', async () => {
    const g = new GraphBuilder('prob');
    const x = g.input('x', 'float32', ['N', 1]);
    g.input('t', 'float32', ['N']);
    g.op('Sigmoid', [g.op('Mul', [x, g.scalar(3)])], {}, 'd');
    g.output('d', 'float32', ['N', 1]);
    const model = buildGuidanceModel(g.build(), { x: 'x', output: 'd' }, 'probability');
    const critic = await createOnnxCritic(serializeModel(model), {
      name: 'p',
      io: { x: 'x', t: 't' },
      timeInput: { kind: 't', scale: 1 },
      timeDType: 'float32',
      coordinates: 'vp',
      lvp: LVP_DEFAULT,
      source: 'p.onnx',
    });
    const { value, grad } = await critic.evaluate({ data: Float32Array.from([0.5, 10]), shape: [2, 1] }, Float64Array.from([0.5, 0.5]));
    expect(value[0]).toBeCloseTo(1.5, 4); // log(σ(z)/(1-σ(z))) = z
    expect(grad.data[0]).toBeCloseTo(3, 3);
    expect(value[1]).toBeCloseTo(Math.log((1 - 1e-5) / 1e-5), 2); // 1 - 1e-5 is not exact in float32
    expect(grad.data[1]).toBe(0);
    await critic.dispose();
  });

  it('guided sampling with an imported ONNX discriminator (the exact ratio) reproduces p', async () => {
    // q: the score model's Gaussian N(0, 0.15·I); p: N(0, 0.05·I); w = 1 must give variance 0.05
    const q = { weights: [1], means: [[0, 0]], variances: [0.15] };
    const model = await loadScoreModel(await writeToyScoreModel(join(dir, 'q'), q, { kind: 'lvp-eps' }));
    await writeFile(join(dir, 'ratio.onnx'), serializeModel(gaussianRatioDiscriminator(0.05, 0.15, 2)));
    await writeFile(
      join(dir, 'disc.json'),
      JSON.stringify({ format: 'dg-studio/discriminator@1', kind: 'onnx', name: 'exact ratio', onnx: 'ratio.onnx', dataShape: [2] }),
    );
    const disc = await loadDiscriminator(join(dir, 'disc.json'), { dataShape: [2], valueRange: [-1, 1] });
    const variance = await guidedVariance(model, disc.critic);
    // 4000 coordinates: the variance estimate has relative s.e. sqrt(2/4000) = 2.2 %; 10 % allows 4.5 s.e.
    expect(Math.abs(variance / 0.05 - 1)).toBeLessThan(0.1);
    await disc.dispose();
  });

  it('iterated rounds (dg-math §10): log r = logit + Σ a_k·logit_k, and two exact rounds guide to p', async () => {
    // round 1 corrects q = N(0, 0.15·I) only part of the way, to p1 = N(0, 0.1·I); round 2, trained against
    // round 1's guided samples, is log(p/p1): together log(p/q), so w = 1 must give p's variance 0.05
    const q = { weights: [1], means: [[0, 0]], variances: [0.15] };
    const model = await loadScoreModel(await writeToyScoreModel(join(dir, 'q2'), q, { kind: 'lvp-eps' }));
    await writeFile(join(dir, 'round1.onnx'), serializeModel(gaussianRatioDiscriminator(0.1, 0.15, 2)));
    await writeFile(join(dir, 'round2.onnx'), serializeModel(gaussianRatioDiscriminator(0.05, 0.1, 2)));
    const manifest = (weight: number, onnx = 'round2.onnx') =>
      JSON.stringify({
        format: 'dg-studio/discriminator@1',
        kind: 'onnx',
        name: 'two rounds',
        onnx: 'round1.onnx',
        refinements: [{ onnx, weight }],
        dataShape: [2],
      });
    await writeFile(join(dir, 'rounds-half.json'), manifest(0.5));
    const half = await loadDiscriminator(join(dir, 'rounds-half.json'), { dataShape: [2], valueRange: [-1, 1] });
    const x = { data: Float32Array.from([0.3, -0.5, 1.2, 0.1]), shape: [2, 2] };
    const tau = Float64Array.from([0.1, 0.6]);
    const { value, grad } = await half.critic.evaluate(x, tau);
    const logGauss = (sq: number, v: number) => -sq / (2 * v) - Math.log(v);
    for (let n = 0; n < 2; n++) {
      const [a, s] = [lvpAlpha(tau[n]!), lvpSigma(tau[n]!)];
      const [v05, v1, v15] = [0.05, 0.1, 0.15].map((v) => a * a * v + s * s) as [number, number, number];
      const sq = x.data[2 * n]! ** 2 + x.data[2 * n + 1]! ** 2;
      const want = logGauss(sq, v1) - logGauss(sq, v15) + 0.5 * (logGauss(sq, v05) - logGauss(sq, v1));
      expect(value[n]).toBeCloseTo(want, 4);
      for (let k = 0; k < 2; k++) {
        const xi = x.data[2 * n + k]!;
        expect(grad.data[2 * n + k]).toBeCloseTo(-xi / v1 + xi / v15 + 0.5 * (-xi / v05 + xi / v1), 4);
      }
    }
    await half.dispose();

    await writeFile(join(dir, 'rounds.json'), manifest(1));
    const disc = await loadDiscriminator(join(dir, 'rounds.json'), { dataShape: [2], valueRange: [-1, 1] });
    // 4000 coordinates: relative s.e. 2.2 %; 10 % allows 4.5 s.e. — and round 1 alone stops at 0.1
    expect(Math.abs((await guidedVariance(model, disc.critic)) / 0.05 - 1)).toBeLessThan(0.1);
    await writeFile(join(dir, 'round1.json'), JSON.stringify({ ...JSON.parse(manifest(1)), refinements: undefined }));
    const round1 = await loadDiscriminator(join(dir, 'round1.json'), { dataShape: [2], valueRange: [-1, 1] });
    expect(Math.abs((await guidedVariance(model, round1.critic)) / 0.1 - 1)).toBeLessThan(0.1);
    await Promise.all([disc.dispose(), round1.dispose()]);

    await writeFile(join(dir, 'rounds-missing.json'), manifest(1, 'round9.onnx'));
    await expect(loadDiscriminator(join(dir, 'rounds-missing.json'))).rejects.toThrow(
      /rounds-missing\.json.*cannot read discriminator round 2 ".*round9\.onnx": file not found/,
    );
  });

  it('an imported discriminator with a wrong output name is an error listing its outputs', async () => {
    await writeFile(
      join(dir, 'bad.json'),
      JSON.stringify({
        format: 'dg-studio/discriminator@1',
        kind: 'onnx',
        name: 'bad',
        onnx: 'ratio.onnx',
        io: { output: 'prob' },
        dataShape: [2],
      }),
    );
    await expect(loadDiscriminator(join(dir, 'bad.json'))).rejects.toThrow(
      /io\.output is "prob", but the ONNX file has no output of that name; its outputs are "logit" — set io\.output/,
    );
  });
});
