import { describe, expect, it } from 'vitest';
import {
  frechetDistance,
  kernelInceptionDistance,
  laplacianPyramid,
  l2,
  averagePool,
  meanMottle,
  meanRoughness,
  mottle,
  roughness,
  psnr,
  pyrUp,
  ssim,
  swd,
  swdPyramids,
} from '../../src/main/engine/eval/metrics.js';
import { Rng } from '../../src/main/engine/rng.js';

const shape = { channels: 3, height: 32, width: 32, range: [-1, 1] as const };
const rng = new Rng(11);
/** A smooth random image: a few random sinusoids per channel. */
function smooth(r: Rng): Float32Array {
  const x = new Float32Array(3 * 32 * 32);
  for (let c = 0; c < 3; c++) {
    const [fx, fy, ph, a] = [r.uniform() * 0.4, r.uniform() * 0.4, r.uniform() * 6, 0.4 + 0.3 * r.uniform()];
    for (let i = 0; i < 1024; i++) x[c * 1024 + i] = a * Math.sin(fx * (i % 32) + fy * Math.floor(i / 32) + ph);
  }
  return x;
}
const noisy = (x: Float32Array, s: number, r: Rng) => x.map((v) => v + s * r.normal());

describe('faithfulness metrics', () => {
  it('PSNR of a constant offset δ is 10·log10(peak²/δ²); L2 is |δ|', () => {
    const a = smooth(rng);
    const b = a.map((v) => v + 0.1);
    expect(psnr(a, b, 2)).toBeCloseTo(10 * Math.log10(4 / 0.01), 4);
    expect(l2(a, b)).toBeCloseTo(0.1, 5);
    expect(psnr(a, a, 2)).toBe(Infinity);
  });
  it('SSIM is 1 for identical images, symmetric, and falls as noise grows', () => {
    const a = smooth(rng);
    expect(ssim(a, a, shape)).toBeCloseTo(1, 10);
    const b = noisy(a, 0.1, rng);
    expect(ssim(a, b, shape)).toBeCloseTo(ssim(b, a, shape), 10);
    const c = noisy(a, 0.4, rng);
    expect(ssim(a, c, shape)).toBeLessThan(ssim(a, b, shape));
    expect(ssim(a, b, shape)).toBeLessThan(1);
  });
});

describe('roughness (mean |4-neighbour Laplacian|)', () => {
  const shape = { channels: 2, height: 6, width: 5 };
  const image = (f: (c: number, y: number, x: number) => number) =>
    Float32Array.from({ length: 2 * 6 * 5 }, (_, i) => f(Math.floor(i / 30), Math.floor((i % 30) / 5), i % 5));
  it('is 0 on constants and on any linear ramp (the Laplacian of a plane is 0)', () => {
    expect(
      roughness(
        image(() => 0.3),
        shape,
      ),
    ).toBe(0);
    expect(
      roughness(
        image((c, y, x) => 0.1 * x - 0.05 * y + c),
        shape,
      ),
    ).toBeCloseTo(0, 6);
  });
  it('is 8a on a ±a checkerboard (each interior pixel differs from its 4 neighbours by 2a), 2 on x²', () => {
    expect(
      roughness(
        image((_c, y, x) => ((x + y) % 2 ? 0.25 : -0.25)),
        shape,
      ),
    ).toBeCloseTo(2, 6);
    // x² has a second difference of 2 along x: |4x² − (x−1)² − (x+1)² − 2x²| = 2 on every interior pixel
    expect(
      roughness(
        image((_c, _y, x) => x * x),
        shape,
      ),
    ).toBeCloseTo(2, 6);
    expect(meanRoughness([image(() => 1), image((_c, _y, x) => x * x)], shape)).toBeCloseTo(1, 6);
  });
});

describe('mottle: roughness where the source is flat, at a scale', () => {
  // 32×32, one channel: the source is flat (0) on the left half and a ±0.5 checkerboard on the right half
  const s = { channels: 1, height: 32, width: 32 };
  const image = (f: (y: number, x: number) => number) => Float32Array.from({ length: 32 * 32 }, (_, i) => f(Math.floor(i / 32), i % 32));
  const source = image((y, x) => (x >= 16 ? ((x + y) % 2 ? 0.5 : -0.5) : 0));
  it('counts only the source’s flat pixels, away from its edges: 0 for an output that is the source', () => {
    expect(roughness(source, s)).toBeGreaterThan(1);
    // flat source pixels: x 1…14 (x 15 sees the checkerboard), y 1…30; the stencil and a 2-pixel margin: x 4…11, y 4…27
    expect(mottle(source, source, s)).toEqual({ sum: 0, count: 8 * 24 });
  });
  it('is 8a for a ±a checkerboard on the flat half (pixel speckle), and 0 for it at 2× (it pools away)', () => {
    const speckled = image((y, x) => (x < 16 ? ((x + y) % 2 ? 0.1 : -0.1) : source[y * 32 + x]!));
    expect(meanMottle([speckled], [source], s)).toBeCloseTo(0.8, 6);
    expect(meanMottle([speckled], [source], s, 2)).toBeCloseTo(0, 6);
  });
  it('sees 2×2 blotches at 2×: a checkerboard of 2-pixel blocks pools to a ±a checkerboard (8a)', () => {
    const blotched = image((y, x) => (x < 16 ? ((Math.floor(x / 2) + Math.floor(y / 2)) % 2 ? 0.1 : -0.1) : source[y * 32 + x]!));
    expect(meanMottle([blotched], [source], s, 2)).toBeCloseTo(0.8, 6);
    expect(averagePool(blotched, s, 2).shape).toEqual({ channels: 1, height: 16, width: 16 });
  });
  it('null without any flat source area', () => {
    const rough = image((y, x) => ((x + y) % 2 ? 0.5 : -0.5));
    expect(meanMottle([rough], [rough], s)).toBeNull();
    expect(() => averagePool(rough, s, 3)).toThrow(/cannot pool 32×32 by 3/);
  });
});

describe('realism metrics', () => {
  it('the Laplacian pyramid reconstructs the image exactly', () => {
    const a = smooth(rng).map((v, i) => v + 0.05 * Math.sin(i));
    const levels = laplacianPyramid(a, 3, 32, 32, 8);
    expect(levels.map((l) => l.h)).toEqual([32, 16, 8]);
    // rebuild from the coarsest: x_l = expand(x_{l+1}) + band_l
    let cur = levels.at(-1)!.data;
    for (let l = levels.length - 2; l >= 0; l--) {
      const up = pyrUp(cur, 3, levels[l + 1]!.h, levels[l + 1]!.w);
      cur = levels[l]!.data.map((v, i) => v + up[i]!);
    }
    cur.forEach((v, i) => expect(Math.abs(v - a[i]!)).toBeLessThan(1e-5));
  });

  it('SWD: a second sample of the same distribution is closer than a grainy one', () => {
    const A = Array.from({ length: 24 }, () => smooth(rng));
    const A2 = Array.from({ length: 24 }, () => smooth(rng));
    const B = Array.from({ length: 24 }, () => noisy(smooth(rng), 0.3, rng));
    const same = swd(A, A2, shape, { directions: 64, patchesPerImage: 32, seed: 1 });
    const diff = swd(A, B, shape, { directions: 64, patchesPerImage: 32, seed: 1 });
    expect(diff.mean).toBeGreaterThan(2 * same.mean);
    // grain is high-frequency: the finest level sees it most
    expect(diff.levels[0]!).toBeGreaterThan(diff.levels.at(-1)!);
  });

  it('SWD against a reference decomposed once equals SWD against its images, and leaves the reference as it was', () => {
    const A = Array.from({ length: 8 }, () => smooth(rng));
    const B = Array.from({ length: 12 }, () => noisy(smooth(rng), 0.3, rng));
    const prepared = swdPyramids(B, shape);
    const before = prepared.pyramids.map((p) => p.map((l) => Float32Array.from(l.data)));
    const opts = { directions: 32, patchesPerImage: 16, seed: 3 };
    const direct = swd(A, B, shape, opts);
    expect(swd(A, prepared, shape, opts)).toEqual(direct);
    // a second use (the next sweep setting) sees the same reference: nothing was normalized in place
    expect(swd(A, prepared, shape, opts)).toEqual(direct);
    prepared.pyramids.forEach((p, i) => p.forEach((l, k) => expect(l.data).toEqual(before[i]![k])));
  });

  it('Fréchet distance between Gaussians matches |m|² + d(1 + s² - 2s)', () => {
    const d = 4;
    const n = 4000;
    const a = Array.from({ length: n }, () => Float64Array.from({ length: d }, () => rng.normal()));
    const b = Array.from({ length: n }, () => Float64Array.from({ length: d }, () => 0.5 + 2 * rng.normal()));
    const expected = d * 0.25 + d * (1 + 4 - 4);
    // sampling error of means and covariances at n = 4000 is a few percent of this value
    expect(Math.abs(frechetDistance(a, b) - expected) / expected).toBeLessThan(0.08);
    expect(frechetDistance(a, a)).toBeCloseTo(0, 6);
  });

  it('KID is near 0 for two samples of one distribution and positive for different ones', () => {
    const d = 8;
    const s = (m: number) => Array.from({ length: 300 }, () => Float64Array.from({ length: d }, () => m + rng.normal()));
    const same = kernelInceptionDistance(s(0), s(0));
    const diff = kernelInceptionDistance(s(0), s(0.5));
    expect(Math.abs(same)).toBeLessThan(0.05);
    expect(diff).toBeGreaterThan(10 * Math.abs(same) + 0.05);
  });
});
