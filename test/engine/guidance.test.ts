import { describe, expect, it } from 'vitest';
import {
  classifierGuidance,
  clipLogRatio,
  combineGuidance,
  criticAtVeState,
  discriminatorGuidance,
  LOG_RATIO_CLIP,
  type Critic,
} from '../../src/main/engine/sampling/guidance.js';
import type { Denoiser } from '../../src/main/engine/sampling/denoiser.js';
import { BatchRng } from '../../src/main/engine/rng.js';
import { CancelledError, sampleDdpm, sampleHeun } from '../../src/main/engine/sampling/samplers.js';
import { alphaFromSigmaVe, lvpTimeFromSigmaVe } from '../../src/main/engine/models/schedules.js';
import type { Tensor } from '../../src/main/engine/tensor.js';

/** A critic with a constant gradient g and a log ratio chosen per item; counts its calls. */
function constantCritic(g: number[], logRatio: (n: number) => number) {
  const calls: Float64Array[] = [];
  const critic: Critic = {
    name: 'constant',
    async evaluate(xVp: Tensor, tau: Float64Array) {
      calls.push(tau);
      const N = xVp.shape[0]!;
      const data = new Float32Array(xVp.data.length);
      for (let n = 0; n < N; n++) data.set(g, n * g.length);
      return { value: Float64Array.from({ length: N }, (_, n) => logRatio(n)), grad: { data, shape: [...xVp.shape] } };
    },
  };
  return { critic, calls };
}

const zeroDenoiser: Denoiser = async (x) => ({ data: new Float32Array(x.data.length), shape: [...x.shape] });
const x2 = (n: number): Tensor => ({ data: new Float32Array(2 * n).fill(0.5), shape: [n, 2] });

describe('discriminator guidance (dg-math §4–§5)', () => {
  it('evaluates the critic at LVP τ(σ) on x_vp = α·x_ve and maps the gradient back by α', async () => {
    const { critic, calls } = constantCritic([1, -2], () => 0.3);
    const sigma = Float64Array.from([0.5, 4]);
    const { gradVe, value } = await criticAtVeState(critic, x2(2), sigma);
    expect(calls[0]![1]).toBeCloseTo(lvpTimeFromSigmaVe(4), 12);
    expect(gradVe.data[2]).toBeCloseTo(alphaFromSigmaVe(4), 6);
    expect(gradVe.data[3]).toBeCloseTo(-2 * alphaFromSigmaVe(4), 6);
    expect(value[0]).toBe(0.3);
  });

  it('clips log r at log((1-1e-5)/1e-5) and zeroes the gradient there', () => {
    const grad = { data: Float32Array.from([1, 1, 1, 1]), shape: [2, 2] };
    const out = clipLogRatio(Float64Array.from([20, -3]), grad);
    expect(out[0]).toBeCloseTo(LOG_RATIO_CLIP, 12);
    expect(Array.from(grad.data)).toEqual([0, 0, 1, 1]);
  });

  it('is zero outside the window [τmin, τmax] and does not call the critic there', async () => {
    const { critic, calls } = constantCritic([1, 1], () => 0);
    const hook = discriminatorGuidance(critic, 1, { w1: 1, window: [0.2, 0.6] });
    const low = await hook.scoreCorrection(x2(1), Float64Array.from([0.05]), { stepIndex: 0, stage: 1 });
    expect(low).toBeNull();
    expect(calls).toHaveLength(0);
    const inside = await hook.scoreCorrection(x2(1), Float64Array.from([2]), { stepIndex: 0, stage: 1 });
    expect(inside!.data[0]).toBeCloseTo(alphaFromSigmaVe(2), 6);
  });

  it('Heun: w2 = 0 (paper default) makes no critic call on the second stage', async () => {
    const { critic, calls } = constantCritic([1, 1], () => 0);
    const guidance = discriminatorGuidance(critic, 2, { w1: 2, w2: 0 });
    await sampleHeun(zeroDenoiser, x2(2), [10, 5, 1, 0], { rng: BatchRng.consecutive(0, 2), guidance });
    expect(calls).toHaveLength(3); // one per step, none on stage 2
    const both = constantCritic([1, 1], () => 0);
    await sampleHeun(zeroDenoiser, x2(2), [10, 5, 1, 0], {
      rng: BatchRng.consecutive(0, 2),
      guidance: discriminatorGuidance(both.critic, 2, { w1: 2, w2: 1 }),
    });
    expect(both.calls).toHaveLength(5); // + stage 2 on the two steps that end above σ = 0
  });

  it('adaptive boosting doubles the weight of items the critic calls fake, every period', async () => {
    const { critic } = constantCritic([1, 0], (n) => (n === 0 ? -1 : 1));
    const seen: Float64Array[] = [];
    const hook = discriminatorGuidance(critic, 2, { w1: 1, boosting: { period: 2, churn: 5 } }, (d) => seen.push(d.weights));
    const sigma = Float64Array.from([1, 1]);
    for (let i = 0; i < 5; i++) await hook.scoreCorrection(x2(2), sigma, { stepIndex: i, stage: 1 });
    expect(seen.map((w) => w[0])).toEqual([1, 1, 2, 2, 4]);
    expect(seen.map((w) => w[1])).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(hook.churnFor!(4)!)).toEqual([5, 0]);
    expect(hook.churnFor!(3)).toBeNull();
  });

  it('DDPM: the guided mean moves by w·β/sqrt(1-β)·∇_{x_vp} log r in VP coordinates', async () => {
    const g = [0.7, -0.3];
    const { critic } = constantCritic(g, () => 0);
    const w = 1.5;
    const [s, sn] = [0.8, 0.6];
    const run = (guided: boolean) =>
      sampleDdpm(zeroDenoiser, x2(1), [s, sn], {
        rng: BatchRng.consecutive(9, 1),
        guidance: guided ? discriminatorGuidance(critic, 1, { w1: w, window: [0, 1] }) : undefined,
      });
    const a = await run(true);
    const b = await run(false);
    const [at, as] = [alphaFromSigmaVe(s), alphaFromSigmaVe(sn)];
    const beta = 1 - (at * at) / (as * as);
    for (let k = 0; k < 2; k++) {
      const shiftVp = as * (a.data[k]! - b.data[k]!);
      expect(shiftVp).toBeCloseTo((w * beta * g[k]!) / Math.sqrt(1 - beta), 5);
    }
  });

  it('classifier guidance and DG add up (dg-math §5, Eq. 6)', async () => {
    const dg = constantCritic([1, 0], () => 0).critic;
    const cls = constantCritic([0, 1], () => -0.1).critic;
    const hook = combineGuidance(discriminatorGuidance(dg, 1, { w1: 2 }), classifierGuidance(cls, 3));
    const c = await hook.scoreCorrection(x2(1), Float64Array.from([1]), { stepIndex: 0, stage: 1 });
    const a = alphaFromSigmaVe(1);
    expect(c!.data[0]).toBeCloseTo(2 * a, 6);
    expect(c!.data[1]).toBeCloseTo(3 * a, 6);
  });

  it('a run stops with CancelledError when its signal is aborted', async () => {
    const ctrl = new AbortController();
    let steps = 0;
    await expect(
      sampleHeun(zeroDenoiser, x2(1), [10, 5, 2, 1, 0], {
        rng: BatchRng.consecutive(0, 1),
        signal: ctrl.signal,
        onStep: () => {
          if (++steps === 2) ctrl.abort();
        },
      }),
    ).rejects.toBeInstanceOf(CancelledError);
    expect(steps).toBe(2);
  });
});
