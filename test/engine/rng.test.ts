import { describe, expect, it } from 'vitest';
import { BatchRng, drawWithoutReplacement, Rng } from '../../src/main/engine/rng.js';

describe('seeded noise', () => {
  it('consecutive seeds give uncorrelated first draws (batch items seeded s, s+1, …)', () => {
    // n = 4000 first normals: mean has s.e. 1/sqrt(n) = 0.016, variance s.e. sqrt(2/n) = 0.022,
    // lag-1 correlation s.e. 1/sqrt(n); bounds are 4 standard errors
    const n = 4000;
    const z = BatchRng.consecutive(1000, n).normal([n, 1]);
    const mean = z.reduce((a, b) => a + b, 0) / n;
    const variance = z.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    let lag = 0;
    for (let i = 1; i < n; i++) lag += (z[i]! - mean) * (z[i - 1]! - mean);
    expect(Math.abs(mean)).toBeLessThan(4 / Math.sqrt(n));
    expect(Math.abs(variance - 1)).toBeLessThan(4 * Math.sqrt(2 / n));
    expect(Math.abs(lag / (n - 1) / variance)).toBeLessThan(4 / Math.sqrt(n));
  });
  it('replays bit for bit from the seed', () => {
    const a = new Rng(42).fillNormal(new Float32Array(100));
    const b = new Rng(42).fillNormal(new Float32Array(100));
    expect(a).toEqual(b);
  });
  it('rejects seeds that are not 32-bit unsigned integers', () => {
    expect(() => new Rng(-1)).toThrow(/seed must be an integer from 0 to 4294967295/);
    expect(() => new Rng(1.5)).toThrow(/seed must be an integer/);
  });
  it('draws without replacement, every item equally likely, the same draw from the same seed', () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    const counts = new Array<number>(10).fill(0);
    const trials = 4000;
    const rng = new Rng(7);
    for (let t = 0; t < trials; t++) {
      const d = drawWithoutReplacement(items, 3, rng);
      expect(new Set(d).size).toBe(3);
      for (const i of d) counts[i]!++;
    }
    // each item is drawn with probability 3/10: a count's s.e. is sqrt(n p (1 - p)) ≈ 29; bounds 4 s.e.
    for (const c of counts) expect(Math.abs(c - 0.3 * trials)).toBeLessThan(4 * Math.sqrt(trials * 0.3 * 0.7));
    expect(drawWithoutReplacement(items, 4, new Rng(1))).toEqual(drawWithoutReplacement(items, 4, new Rng(1)));
    // asking for more than there are: all of them, once each; the input is left alone
    expect([...drawWithoutReplacement(items, 99, new Rng(2))].sort((a, b) => a - b)).toEqual(items);
    expect(items).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });
});
