/**
 * The realism–faithfulness trade-off as numbers (paper Fig. 6, dg-math §6):
 * faithfulness = L2 / PSNR / SSIM to the source; realism = distances between the set of
 * translations and a target reference set (sliced Wasserstein on Laplacian-pyramid patches,
 * Fréchet distance and KID on features). Images are CHW Float32Arrays in the model range.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { Rng } from '../rng.js';

export interface ImageShape {
  channels: number;
  height: number;
  width: number;
  /** value range of the images, e.g. [-1, 1] */
  range: readonly [number, number];
}

// ---- paired metrics ----

/** Mean squared error per pixel and channel. */
export function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s / a.length;
}

/** Root-mean-square distance ("L2" in the paper's faithfulness axis, per pixel). */
export function l2(a: Float32Array, b: Float32Array): number {
  return Math.sqrt(mse(a, b));
}

/** PSNR in dB for images whose value range spans `peak` (2 for [-1, 1]). */
export function psnr(a: Float32Array, b: Float32Array, peak: number): number {
  const m = mse(a, b);
  return m === 0 ? Infinity : 10 * Math.log10((peak * peak) / m);
}

// ---- a plain image statistic beside the set distances ----

type Plane = Pick<ImageShape, 'channels' | 'height' | 'width'>;

/** |4-neighbour Laplacian| of channel k at interior pixel (y, x). */
function absLaplacian(img: Float32Array, s: Plane, k: number, y: number, x: number): number {
  const i = k * s.height * s.width + y * s.width + x;
  return Math.abs(4 * img[i]! - img[i - s.width]! - img[i + s.width]! - img[i - 1]! - img[i + 1]!);
}

/**
 * Roughness: the mean |4-neighbour Laplacian| per interior pixel and channel, |4·x − (up + down + left +
 * right)|, in the images' own units. Noise and speckle raise it; flat areas and smooth ramps give 0. A
 * set's roughness is compared as a ratio to the target set's (outputs ÷ targets: 1 is as smooth as the
 * target domain), a check that a better FD/SWD is not bought with speckle.
 */
export function roughness(img: Float32Array, shape: Plane): number {
  const { channels: c, height: h, width: w } = shape;
  let sum = 0;
  for (let k = 0; k < c; k++) for (let y = 1; y < h - 1; y++) for (let x = 1; x < w - 1; x++) sum += absLaplacian(img, shape, k, y, x);
  return sum / (c * (h - 2) * (w - 2));
}

/** The mean roughness of a set of images. */
export function meanRoughness(set: Float32Array[], shape: Plane): number {
  return set.reduce((a, img) => a + roughness(img, shape), 0) / set.length;
}

/** An image average-pooled by an integer factor f (f divides the height and width). */
export function averagePool(img: Float32Array, s: Plane, f: number): { data: Float32Array; shape: Plane } {
  const [h, w] = [s.height / f, s.width / f];
  if (!Number.isInteger(h) || !Number.isInteger(w)) throw new Error(`cannot pool ${s.width}×${s.height} by ${f}`);
  const data = new Float32Array(s.channels * h * w);
  for (let k = 0; k < s.channels; k++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        let v = 0;
        for (let dy = 0; dy < f; dy++)
          for (let dx = 0; dx < f; dx++) v += img[k * s.height * s.width + (y * f + dy) * s.width + x * f + dx]!;
        data[k * h * w + y * w + x] = v / (f * f);
      }
  return { data, shape: { channels: s.channels, height: h, width: w } };
}

/**
 * Mottle (issue 26: "flat areas come back mottled"): the roughness of an output where its *source* is flat, at 1/f
 * resolution — mean |4-neighbour Laplacian| of the f-pooled output over the pooled pixels whose whole stencil, plus a
 * `margin`-pixel border at full resolution, lies on flat source pixels (every channel's |Laplacian| < `threshold`).
 * The plain roughness ratio is an average dominated by edges; this sees only what should have stayed flat, at the
 * scale asked (f 1: pixel speckle; f 4: 4-pixel blotches). 0 for an output as flat as its source there. Returns the
 * sum and the number of values, so that a set is pooled over pixels (`meanMottle`).
 */
export function mottle(output: Float32Array, source: Float32Array, s: Plane, f = 1, threshold = 0.02, margin = 2) {
  const [h, w] = [s.height, s.width];
  const flat = new Uint8Array(h * w);
  for (let y = 1; y < h - 1; y++)
    for (let x = 1; x < w - 1; x++) {
      let v = 0;
      for (let k = 0; k < s.channels; k++) v = Math.max(v, absLaplacian(source, s, k, y, x));
      flat[y * w + x] = v < threshold ? 1 : 0;
    }
  const pooled = averagePool(output, s, f);
  const [ph, pw] = [pooled.shape.height, pooled.shape.width];
  let sum = 0;
  let count = 0;
  for (let y = 1; y < ph - 1; y++)
    for (let x = 1; x < pw - 1; x++) {
      // the stencil reads pooled pixels y−1…y+1: full-resolution rows (y−1)·f … (y+2)·f − 1, widened by the margin
      let ok = true;
      for (let yy = (y - 1) * f - margin; ok && yy < (y + 2) * f + margin; yy++)
        for (let xx = (x - 1) * f - margin; xx < (x + 2) * f + margin; xx++)
          if (yy < 0 || xx < 0 || yy >= h || xx >= w || !flat[yy * w + xx]) {
            ok = false;
            break;
          }
      if (!ok) continue;
      for (let k = 0; k < s.channels; k++) sum += absLaplacian(pooled.data, pooled.shape, k, y, x);
      count += s.channels;
    }
  return { sum, count };
}

/** A set's mottle pooled over every counted pixel and channel (null when no source has a flat area). */
export function meanMottle(outputs: Float32Array[], sources: Float32Array[], s: Plane, f = 1): number | null {
  let [sum, count] = [0, 0];
  outputs.forEach((o, i) => {
    const m = mottle(o, sources[i]!, s, f);
    sum += m.sum;
    count += m.count;
  });
  return count ? sum / count : null;
}

function gaussianWindow(size = 11, sigma = 1.5): Float64Array {
  const w = new Float64Array(size);
  const c = (size - 1) / 2;
  for (let i = 0; i < size; i++) w[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((v) => v / s);
}

/** Separable 'valid' Gaussian filtering of one plane. */
function filterValid(plane: Float64Array, h: number, w: number, win: Float64Array): { data: Float64Array; h: number; w: number } {
  const k = win.length;
  const tmp = new Float64Array(h * (w - k + 1));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x <= w - k; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += win[i]! * plane[y * w + x + i]!;
      tmp[y * (w - k + 1) + x] = s;
    }
  }
  const ow = w - k + 1;
  const oh = h - k + 1;
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += win[i]! * tmp[(y + i) * ow + x]!;
      out[y * ow + x] = s;
    }
  }
  return { data: out, h: oh, w: ow };
}

/**
 * SSIM (Wang et al. 2004): 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, dynamic range
 * L = the value range; computed per channel and averaged.
 */
export function ssim(a: Float32Array, b: Float32Array, shape: ImageShape): number {
  const { channels, height: h, width: w } = shape;
  const L = shape.range[1] - shape.range[0];
  const [c1, c2] = [(0.01 * L) ** 2, (0.03 * L) ** 2];
  const win = gaussianWindow(Math.min(11, h, w), 1.5);
  let total = 0;
  const plane = h * w;
  for (let c = 0; c < channels; c++) {
    const x = Float64Array.from(a.subarray(c * plane, (c + 1) * plane));
    const y = Float64Array.from(b.subarray(c * plane, (c + 1) * plane));
    const mx = filterValid(x, h, w, win);
    const my = filterValid(y, h, w, win);
    const xx = filterValid(
      x.map((v) => v * v),
      h,
      w,
      win,
    ).data;
    const yy = filterValid(
      y.map((v) => v * v),
      h,
      w,
      win,
    ).data;
    const xy = filterValid(
      x.map((v, i) => v * y[i]!),
      h,
      w,
      win,
    ).data;
    let s = 0;
    for (let i = 0; i < mx.data.length; i++) {
      const [ux, uy] = [mx.data[i]!, my.data[i]!];
      const vx = xx[i]! - ux * ux;
      const vy = yy[i]! - uy * uy;
      const cxy = xy[i]! - ux * uy;
      s += ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
    }
    total += s / mx.data.length;
  }
  return total / channels;
}

// ---- sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018) ----

const BINOMIAL = [1, 4, 6, 4, 1].map((v) => v / 16);

/** Blur with the 5-tap binomial filter (reflect borders), then keep every other pixel. */
function pyrDown(img: Float32Array, c: number, h: number, w: number): Float32Array {
  const [oh, ow] = [h >> 1, w >> 1];
  const out = new Float32Array(c * oh * ow);
  const at = (ch: number, y: number, x: number) => {
    const yy = y < 0 ? -y : y >= h ? 2 * h - y - 2 : y;
    const xx = x < 0 ? -x : x >= w ? 2 * w - x - 2 : x;
    return img[ch * h * w + yy * w + xx]!;
  };
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) s += BINOMIAL[i]! * BINOMIAL[j]! * at(ch, 2 * y + i - 2, 2 * x + j - 2);
        out[ch * oh * ow + y * ow + x] = s;
      }
    }
  }
  return out;
}

/** Upsample ×2 by zero insertion and the binomial filter ×4 (the Laplacian pyramid's expand). */
export function pyrUp(img: Float32Array, c: number, h: number, w: number): Float32Array {
  const [oh, ow] = [2 * h, 2 * w];
  const out = new Float32Array(c * oh * ow);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (let i = 0; i < 5; i++) {
          const sy = y + i - 2;
          if (sy % 2 !== 0) continue;
          const yy = Math.min(h - 1, Math.max(0, sy / 2));
          for (let j = 0; j < 5; j++) {
            const sx = x + j - 2;
            if (sx % 2 !== 0) continue;
            const xx = Math.min(w - 1, Math.max(0, sx / 2));
            s += 4 * BINOMIAL[i]! * BINOMIAL[j]! * img[ch * h * w + yy * w + xx]!;
          }
        }
        out[ch * oh * ow + y * ow + x] = s;
      }
    }
  }
  return out;
}

/** Laplacian pyramid levels, finest first, down to `minSize` (the last level is the low-pass). */
export function laplacianPyramid(
  img: Float32Array,
  c: number,
  h: number,
  w: number,
  minSize = 16,
): { data: Float32Array; h: number; w: number }[] {
  const levels: { data: Float32Array; h: number; w: number }[] = [];
  let cur = img;
  let [ch, cw] = [h, w];
  while (ch > minSize && cw > minSize) {
    const down = pyrDown(cur, c, ch, cw);
    const up = pyrUp(down, c, ch >> 1, cw >> 1);
    levels.push({ data: cur.map((v, i) => v - up[i]!), h: ch, w: cw });
    cur = down;
    ch >>= 1;
    cw >>= 1;
  }
  levels.push({ data: cur, h: ch, w: cw });
  return levels;
}

/** 7×7 neighbourhoods (all channels) at random positions: descriptors of one pyramid level. */
function patches(level: { data: Float32Array; h: number; w: number }, c: number, count: number, rng: Rng, size = 7): Float32Array[] {
  const out: Float32Array[] = [];
  for (let k = 0; k < count; k++) {
    const y = Math.floor(rng.uniform() * (level.h - size + 1));
    const x = Math.floor(rng.uniform() * (level.w - size + 1));
    const d = new Float32Array(c * size * size);
    let i = 0;
    for (let ch = 0; ch < c; ch++)
      for (let dy = 0; dy < size; dy++)
        for (let dx = 0; dx < size; dx++) d[i++] = level.data[ch * level.h * level.w + (y + dy) * level.w + x + dx]!;
    out.push(d);
  }
  return out;
}

/** Sliced Wasserstein distance between two descriptor sets of equal size (random unit directions). */
export function slicedWasserstein(a: Float32Array[], b: Float32Array[], directions: number, rng: Rng): number {
  const d = a[0]!.length;
  const n = Math.min(a.length, b.length);
  let total = 0;
  for (let r = 0; r < directions; r++) {
    const dir = new Float64Array(d).map(() => rng.normal());
    const norm = Math.sqrt(dir.reduce((s, v) => s + v * v, 0));
    const proj = (set: Float32Array[]) => {
      const out = new Float64Array(n);
      for (let k = 0; k < n; k++) {
        const v = set[k]!;
        let s = 0;
        for (let i = 0; i < d; i++) s += v[i]! * dir[i]!;
        out[k] = s / norm;
      }
      return out.sort();
    };
    const [pa, pb] = [proj(a), proj(b)];
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.abs(pa[i]! - pb[i]!);
    total += s / n;
  }
  return total / directions;
}

/** An image set's Laplacian pyramids, built once for a set that `swd` meets again and again (a sweep's reference). */
export interface SwdPyramids {
  readonly pyramids: { data: Float32Array; h: number; w: number }[][];
}

export function swdPyramids(set: Float32Array[], shape: ImageShape): SwdPyramids {
  return { pyramids: set.map((x) => laplacianPyramid(x, shape.channels, shape.height, shape.width)) };
}

/**
 * SWD between two image sets (Karras et al. 2018, App. D): per Laplacian level, 7×7 patch
 * descriptors normalized per channel by the pooled mean and std, 512 random directions;
 * returns each level (finest first) and their mean, ×1000 as in the paper.
 */
export function swd(
  setA: Float32Array[],
  setB: Float32Array[] | SwdPyramids,
  shape: ImageShape,
  opts: { patchesPerImage?: number; directions?: number; seed?: number } = {},
): { levels: number[]; mean: number } {
  const rng = new Rng(opts.seed ?? 0);
  const per = opts.patchesPerImage ?? 64;
  const { channels: c } = shape;
  const pyrA = swdPyramids(setA, shape).pyramids;
  const pyrB = Array.isArray(setB) ? swdPyramids(setB, shape).pyramids : setB.pyramids;
  const levels: number[] = [];
  for (let l = 0; l < pyrA[0]!.length; l++) {
    const da = pyrA.flatMap((p) => patches(p[l]!, c, per, rng));
    const db = pyrB.flatMap((p) => patches(p[l]!, c, per, rng));
    // normalize each channel's entries by the mean and std over both sets
    const size = da[0]!.length / c;
    for (let ch = 0; ch < c; ch++) {
      let [s, s2, n] = [0, 0, 0];
      for (const d of [...da, ...db]) {
        for (let i = ch * size; i < (ch + 1) * size; i++) {
          s += d[i]!;
          s2 += d[i]! ** 2;
          n++;
        }
      }
      const mean = s / n;
      const std = Math.sqrt(Math.max(s2 / n - mean * mean, 1e-12));
      for (const d of [...da, ...db]) for (let i = ch * size; i < (ch + 1) * size; i++) d[i] = (d[i]! - mean) / std;
    }
    levels.push(1000 * slicedWasserstein(da, db, opts.directions ?? 512, rng));
  }
  return { levels, mean: levels.reduce((a, b) => a + b, 0) / levels.length };
}

// ---- feature-space distances ----

function meanCov(feats: Float64Array[]): { mean: Float64Array; cov: Matrix } {
  const n = feats.length;
  const d = feats[0]!.length;
  const mean = new Float64Array(d);
  for (const f of feats) for (let i = 0; i < d; i++) mean[i]! += f[i]! / n;
  const centered = new Matrix(feats.map((f) => Array.from(f, (v, i) => v - mean[i]!)));
  return {
    mean,
    cov: centered
      .transpose()
      .mmul(centered)
      .div(n - 1),
  };
}

function sqrtPsd(m: Matrix): Matrix {
  const e = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const v = e.eigenvectorMatrix;
  const s = Matrix.diag(e.realEigenvalues.map((x) => Math.sqrt(Math.max(x, 0))));
  return v.mmul(s).mmul(v.transpose());
}

/** Fréchet distance |μa-μb|² + tr(Σa + Σb - 2(Σa^½ Σb Σa^½)^½) between two feature sets. */
export function frechetDistance(a: Float64Array[], b: Float64Array[]): number {
  const A = meanCov(a);
  const B = meanCov(b);
  const sa = sqrtPsd(A.cov);
  const cross = sqrtPsd(sa.mmul(B.cov).mmul(sa));
  let d2 = 0;
  for (let i = 0; i < A.mean.length; i++) d2 += (A.mean[i]! - B.mean[i]!) ** 2;
  return d2 + A.cov.trace() + B.cov.trace() - 2 * cross.trace();
}

/** KID: unbiased MMD² with the cubic polynomial kernel k(x,y) = (x·y/d + 1)³ (Bińkowski et al. 2018). */
export function kernelInceptionDistance(a: Float64Array[], b: Float64Array[]): number {
  const d = a[0]!.length;
  const k = (x: Float64Array, y: Float64Array) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += x[i]! * y[i]!;
    return (s / d + 1) ** 3;
  };
  const within = (s: Float64Array[]) => {
    let t = 0;
    for (let i = 0; i < s.length; i++) for (let j = 0; j < s.length; j++) if (i !== j) t += k(s[i]!, s[j]!);
    return t / (s.length * (s.length - 1));
  };
  let cross = 0;
  for (const x of a) for (const y of b) cross += k(x, y);
  return within(a) + within(b) - (2 * cross) / (a.length * b.length);
}

// ---- feature extractors ----

export interface FeatureExtractor {
  readonly name: string;
  features(images: Float32Array[], shape: ImageShape): Promise<Float64Array[]>;
  dispose(): Promise<void>;
}
