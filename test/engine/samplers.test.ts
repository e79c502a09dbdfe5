import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { discriminatorGuidance, type Critic } from '../../src/main/engine/sampling/guidance.js';
import { BatchRng } from '../../src/main/engine/rng.js';
import { loadScoreModel, type ScoreModel } from '../../src/main/engine/models/score-model.js';
import { networkEvaluations, SAMPLERS, type SamplerName } from '../../src/main/engine/sampling/samplers.js';
import { sdedit } from '../../src/main/engine/sampling/sdedit.js';
import { exactLogRatioCritic, writeToyScoreModel } from '../../src/main/engine/models/toy-mixture.js';
import { tempDir } from '../helpers/tmp.js';
import { modeStats, P, Q } from '../helpers/toy.js';

/**
 * dg-math §7, the correctness anchor: the score model is the exact score of the wrong
 * mixture q; guidance with the exact log(p_t/q_t) at w = 1 must give p, w = 0 gives q.
 *
 * Bounds from the sample size: n = 2000 samples, the first-mode fraction has standard
 * error sqrt(w(1-w)/n) ≤ 0.0103, and we allow 4 standard errors plus 0.02 for the
 * sampler's discretization. A mode's per-dimension variance from m ≈ 600–1400 points
 * in 2 dims has relative standard error sqrt(1/m) ≤ 0.041; we allow 25 % (the modes'
 * variances, 0.05 for p and 0.15 for q, differ by 3×).
 */
const N = 2000;
const STEPS: Record<SamplerName, number> = {
  euler: 100,
  heun: 40,
  ddim: 100,
  ddpm: 200,
  'dpm++2m': 40,
  'dpm++3m': 40,
  unipc: 40,
  'euler-a': 200,
  'dpm++2m-sde': 60,
};
const weightTol = 4 * Math.sqrt(0.25 / N) + 0.02;

async function generate(model: ScoreModel, sampler: SamplerName, w: number, seed: number, critic?: Critic) {
  const rng = BatchRng.consecutive(seed, N);
  const guidance =
    critic && w !== 0 ? discriminatorGuidance(critic, N, { w1: w, w2: sampler === 'heun' ? w : 0, window: [1e-5, 1] }) : undefined;
  const source = { data: new Float32Array(N * 2), shape: [N, 2] };
  return sdedit(model.denoiser(), model.schedule, source, { t0: 1, steps: STEPS[sampler], sampler }, { rng, guidance });
}

describe('guided samplers on the Gaussian-mixture toy (dg-math §7)', async () => {
  const dir = await tempDir();
  const model = await loadScoreModel(await writeToyScoreModel(join(dir, 'q'), Q, { kind: 'lvp-eps' }));
  const critic = exactLogRatioCritic(P, Q);

  for (const sampler of Object.keys(SAMPLERS) as SamplerName[]) {
    it(`${sampler}: guided sampling with the exact ratio (w = 1) reproduces p`, async () => {
      const out = await generate(model, sampler, 1, 11, critic);
      const s = modeStats(out.data, P);
      expect(Math.abs(s.weight0 - P.weights[0]!)).toBeLessThan(weightTol);
      for (const v of s.variance) expect(Math.abs(v / P.variances[0]! - 1)).toBeLessThan(0.25);
    });
    it(`${sampler}: unguided sampling (w = 0) reproduces q`, async () => {
      const out = await generate(model, sampler, 0, 12);
      const s = modeStats(out.data, Q);
      expect(Math.abs(s.weight0 - Q.weights[0]!)).toBeLessThan(weightTol);
      for (const v of s.variance) expect(Math.abs(v / Q.variances[0]! - 1)).toBeLessThan(0.25);
    });
  }

  it('heun with EDM churn (S_churn = 20) still reproduces q: churn adds exactly the missing noise', async () => {
    const rng = BatchRng.consecutive(21, N);
    const source = { data: new Float32Array(N * 2), shape: [N, 2] };
    const out = await sdedit(
      model.denoiser(),
      model.schedule,
      source,
      { t0: 1, steps: 40, sampler: 'heun', churn: { sChurn: 20 } },
      { rng },
    );
    const s = modeStats(out.data, Q);
    expect(Math.abs(s.weight0 - Q.weights[0]!)).toBeLessThan(weightTol);
    for (const v of s.variance) expect(Math.abs(v / Q.variances[0]! - 1)).toBeLessThan(0.25);
  });

  it('the same deterministic trajectory in VE (EDM denoiser) and VP (LVP ε) coordinates agrees', async () => {
    const ve = await loadScoreModel(await writeToyScoreModel(join(dir, 've'), Q, { kind: 'edm-denoiser-sigma' }));
    const sigmas = [...model.schedule.sdeditSigmas(0.6, 30)];
    const start = { data: Float32Array.from([0.4, -0.3, 2, 1, -2.5, 0.7]), shape: [3, 2] };
    const opts = { rng: BatchRng.consecutive(0, 3) };
    const a = await SAMPLERS.heun(model.denoiser(), start, sigmas, opts);
    const b = await SAMPLERS.heun(ve.denoiser(), start, sigmas, opts);
    a.data.forEach((v, i) => expect(Math.abs(v - b.data[i]!)).toBeLessThan(1e-4));
  });

  it('SDEdit with t0 → 0 returns the source: the change shrinks with σ(t0)', async () => {
    const src = { data: Float32Array.from([-1.4, 0.6, 1.3, -0.4, 0.2, 0.1]), shape: [3, 2] };
    const discrete = await loadScoreModel(await writeToyScoreModel(join(dir, 'ddpm'), Q, { kind: 'ddpm-eps-step', steps: 1000 }));
    for (const m of [model, discrete]) {
      for (const sampler of Object.keys(SAMPLERS) as SamplerName[]) {
        for (const t0 of [1e-2, 1e-4]) {
          const out = await sdedit(m.denoiser(), m.schedule, src, { t0, steps: 5, sampler }, { rng: BatchRng.consecutive(3, 3) });
          // the start is x_src + σ(t0)·ε; the sampler moves it by O(σ): 6σ bounds 6 standard deviations
          const bound = 6 * m.schedule.sigmaAt(t0);
          out.data.forEach((v, i) => expect(Math.abs(v - src.data[i]!)).toBeLessThan(bound));
        }
      }
    }
    expect(model.schedule.sigmaAt(1e-4)).toBeLessThan(0.004);
  });

  it('the same seed gives bit-identical output; an item does not depend on its batch', async () => {
    const src = { data: Float32Array.from([-1.4, 0.6, 1.3, -0.4, 0.2, 0.1]), shape: [3, 2] };
    const run = (s: typeof src, seed: number) =>
      sdedit(
        model.denoiser(),
        model.schedule,
        s,
        { t0: 0.7, steps: 20, sampler: 'ddpm' },
        { rng: BatchRng.consecutive(seed, s.shape[0]!), guidance: discriminatorGuidance(critic, s.shape[0]!, { w1: 1 }) },
      );
    const a = await run(src, 5);
    const b = await run(src, 5);
    expect(Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer))).toBe(true);
    const c = await run(src, 6);
    expect(Buffer.from(a.data.buffer).equals(Buffer.from(c.data.buffer))).toBe(false);
    // item 1 alone with seed 5 + 1 equals item 1 of the batch seeded 5
    const alone = await run({ data: src.data.slice(2, 4), shape: [1, 2] }, 6);
    expect(alone.data[0]).toBe(a.data[2]);
    expect(alone.data[1]).toBe(a.data[3]);
  });

  it('networkEvaluations (the NFE the CLI states) counts the calls each sampler makes', async () => {
    const src = { data: Float32Array.from([0.3, -0.2]), shape: [1, 2] };
    for (const sampler of Object.keys(SAMPLERS) as SamplerName[]) {
      for (const steps of [1, 2, 7]) {
        let calls = 0;
        const counted = model.denoiser();
        await sdedit(
          (x, s) => {
            calls++;
            return counted(x, s);
          },
          model.schedule,
          src,
          { t0: 0.6, steps, sampler },
          { rng: BatchRng.consecutive(1, 1) },
        );
        expect([sampler, steps, calls]).toEqual([sampler, steps, networkEvaluations(sampler, steps)]);
      }
    }
  });
});
