import { describe, expect, it } from 'vitest';
import type { Denoiser } from '../../src/main/engine/sampling/denoiser.js';
import { denoisingCheck, linearMmseDenoise, pixelMoments } from '../../src/main/engine/models/model-check.js';
import { Rng } from '../../src/main/engine/rng.js';

const SIZE = 16;
const SHAPE = [1, 4, 4];

describe('the "not noise" gate: denoising against the per-pixel linear MMSE baseline', () => {
  const rng = new Rng(7);
  const a = Float32Array.from({ length: SIZE }, () => rng.uniform() * 2 - 1);
  const b = Float32Array.from({ length: SIZE }, () => rng.uniform() * 2 - 1);
  const twoPoint = [a, b, a, b, a, b];

  /** The exact posterior mean of the 50/50 two-point prior {a, b} (what a perfect model learns). */
  const oracle: Denoiser = async (x, sigma) => {
    const out = new Float32Array(x.data.length);
    for (let n = 0; n < sigma.length; n++) {
      const xi = x.data.subarray(n * SIZE, (n + 1) * SIZE);
      const d2 = (c: Float32Array) => xi.reduce((s, v, i) => s + (v - c[i]!) ** 2, 0);
      const la = -d2(a) / (2 * sigma[n]! ** 2);
      const lb = -d2(b) / (2 * sigma[n]! ** 2);
      const wa = 1 / (1 + Math.exp(lb - la));
      for (let i = 0; i < SIZE; i++) out[n * SIZE + i] = wa * a[i]! + (1 - wa) * b[i]!;
    }
    return { data: out, shape: x.shape };
  };

  it('a model that knows the data beats the baseline at every noise level', async () => {
    const levels = await denoisingCheck(oracle, twoPoint, SHAPE, [0.2, 0.5, 1, 2]);
    for (const l of levels) expect(l.ratio).toBeLessThan(0.9);
  });

  it('a model that outputs noise, or returns its input, fails', async () => {
    const noise: Denoiser = async (x) => ({ data: Float32Array.from(x.data, () => rng.uniform() * 2 - 1), shape: x.shape });
    const identity: Denoiser = async (x) => x;
    for (const bad of [noise, identity]) {
      const levels = await denoisingCheck(bad, twoPoint, SHAPE, [0.2, 0.5, 1]);
      for (const l of levels) expect(l.ratio).toBeGreaterThan(1);
    }
  });

  it('the baseline error matches the Gaussian closed form vσ²/(v + σ²)', async () => {
    // Gaussian data, per-pixel variance v = 0.25: the linear MMSE estimate is the exact posterior mean
    const g = new Rng(3);
    const images = Array.from({ length: 600 }, () => Float32Array.from({ length: SIZE }, () => 0.1 + 0.5 * g.normal()));
    const identity: Denoiser = async (x) => x;
    for (const sigma of [0.3, 1]) {
      const [level] = await denoisingCheck(identity, images, SHAPE, [sigma]);
      const v = 0.25;
      // 9600 squared errors: relative s.e. ≈ sqrt(2/9600) ≈ 1.4 %, so 6 % is over 4 s.e.
      expect(level!.baselineMse).toBeGreaterThan(((v * sigma ** 2) / (v + sigma ** 2)) * 0.94);
      expect(level!.baselineMse).toBeLessThan(((v * sigma ** 2) / (v + sigma ** 2)) * 1.06);
      expect(level!.modelMse).toBeCloseTo(sigma ** 2, 1);
    }
  });

  it('moments and the shrinkage formula', () => {
    const m = pixelMoments([Float32Array.of(0, 2), Float32Array.of(2, 2)]);
    expect([...m.mean]).toEqual([1, 2]);
    expect([...m.variance]).toEqual([1, 0]);
    // σ = 1: pixel 0 halfway to the mean, pixel 1 (no variance) is the mean
    expect([...linearMmseDenoise(Float32Array.of(3, 5), 1, m)]).toEqual([2, 2]);
  });
});
