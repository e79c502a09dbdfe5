import type { GaussianMixture } from '../../src/main/engine/models/toy-mixture.js';

/** Target p (dg-math §7): two narrow modes, 70/30. */
export const P: GaussianMixture = {
  weights: [0.7, 0.3],
  means: [
    [-1.5, 0.5],
    [1.5, -0.5],
  ],
  variances: [0.05, 0.05],
};

/** The "pre-trained" wrong mixture q: same places, wrong weights and wider modes. */
export const Q: GaussianMixture = {
  weights: [0.3, 0.7],
  means: [
    [-1.5, 0.5],
    [1.5, -0.5],
  ],
  variances: [0.15, 0.15],
};

/** Fraction of points nearer the first mode, and each mode's mean squared radius per dim. */
export function modeStats(data: Float32Array, m: GaussianMixture): { weight0: number; variance: [number, number] } {
  const n = data.length / 2;
  let c0 = 0;
  const sq: [number, number] = [0, 0];
  const cnt: [number, number] = [0, 0];
  for (let i = 0; i < n; i++) {
    const x = data[2 * i]!;
    const y = data[2 * i + 1]!;
    const d = m.means.map(([mx, my]) => (x - mx!) ** 2 + (y - my!) ** 2);
    const k = d[0]! <= d[1]! ? 0 : 1;
    if (k === 0) c0++;
    sq[k] += d[k]! / 2;
    cnt[k]++;
  }
  return { weight0: c0 / n, variance: [sq[0] / cnt[0], sq[1] / cnt[1]] };
}
