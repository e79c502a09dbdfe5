import { expect } from 'vitest';
import { gradient, gradOutputName } from '../../src/main/engine/onnx/autodiff.js';
import type { GraphBuilder } from '../../src/main/engine/onnx/builder.js';
import { serializeModel, type DType, type OnnxModel } from '../../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { Rng } from '../../src/main/engine/rng.js';

export interface Feed {
  dtype: DType;
  shape: number[];
  data: Float32Array | Float64Array | BigInt64Array;
}

export interface CheckOptions {
  /** finite-difference step */
  h: number;
  /** |analytic - fd| ≤ atol + rtol·max(|analytic|, |fd|) */
  atol: number;
  rtol: number;
  /** how many coordinates of each input to probe (all if fewer) */
  probes?: number;
  opset?: number;
}

const toTensor = (f: Feed) => new ort.Tensor(f.dtype as 'float32', f.data as Float32Array, f.shape);

export function randomFeed(rng: Rng, dtype: 'float32' | 'float64', shape: number[], opts: { min?: number; away?: number } = {}): Feed {
  const n = shape.reduce((a, b) => a * b, 1);
  const arr = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = rng.normal();
    // keep away from kinks (Relu, Clip, pooling ties) so central differences are valid
    if (opts.away) v = Math.sign(v || 1) * (Math.abs(v) + opts.away);
    if (opts.min !== undefined) v = opts.min + Math.abs(v);
    arr[i] = v;
  }
  return { dtype, shape, data: arr };
}

/**
 * Compare the gradient graph against central finite differences of L = Σ y·R for a random
 * cotangent R (so the whole vector–Jacobian product is checked, not just Σ y).
 */
export async function checkGradient(
  build: (g: GraphBuilder) => OnnxModel,
  feeds: Record<string, Feed>,
  wrt: string[],
  opts: CheckOptions,
  seed = 1,
) {
  const { GraphBuilder } = await import('../../src/main/engine/onnx/builder.js');
  const model = build(new GraphBuilder('check'));
  if (opts.opset) model.opsetVersion = opts.opset;
  const fwd = await createSession(serializeModel(model), 'forward');
  const run = async (f: Record<string, Feed>) => {
    const out = await fwd.session.run(Object.fromEntries(Object.entries(f).map(([k, v]) => [k, toTensor(v)])));
    return out['y']!;
  };
  const y0 = await run(feeds);
  const rng = new Rng(seed);
  const R = Float64Array.from({ length: y0.data.length }, () => rng.normal());
  const seedFeed: Feed = {
    dtype: y0.type as DType,
    shape: [...y0.dims],
    data: y0.type === 'float64' ? Float64Array.from(R) : Float32Array.from(R),
  };
  const L = async (f: Record<string, Feed>) => {
    const y = (await run(f)).data as Float32Array | Float64Array;
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * R[i]!;
    return s;
  };
  const gModel = gradient(model, { of: 'y', wrt, seed: 'input' });
  const gs = await createSession(serializeModel(gModel), 'gradient');
  const gOut = await gs.session.run(
    Object.fromEntries([...Object.entries(feeds).map(([k, v]) => [k, toTensor(v)]), ['y_grad_seed', toTensor(seedFeed)]]),
  );
  let checked = 0;
  for (const w of wrt) {
    const analytic = gOut[gradOutputName(w)]!.data as Float32Array | Float64Array;
    const base = feeds[w]!;
    expect(analytic.length).toBe(base.data.length);
    const n = base.data.length;
    const probes = Math.min(n, opts.probes ?? 24);
    const idx = probes === n ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: probes }, () => Math.floor(rng.uniform() * n));
    for (const i of idx) {
      const plus = { ...base, data: base.data.slice() } as Feed;
      const minus = { ...base, data: base.data.slice() } as Feed;
      (plus.data as Float64Array)[i] = Number(base.data[i]) + opts.h;
      (minus.data as Float64Array)[i] = Number(base.data[i]) - opts.h;
      const fd = ((await L({ ...feeds, [w]: plus })) - (await L({ ...feeds, [w]: minus }))) / (2 * opts.h);
      const a = analytic[i]!;
      const tol = opts.atol + opts.rtol * Math.max(Math.abs(a), Math.abs(fd));
      if (!(Math.abs(a - fd) <= tol))
        throw new Error(`∂L/∂${w}[${i}]: gradient graph ${a}, finite difference ${fd} (tolerance ${tol.toExponential(2)})`);
      checked++;
    }
  }
  return { checked, gradModel: gModel };
}

/**
 * Directional-derivative check: (L(θ + h·v) - L(θ - h·v)) / 2h against Σ ∇L·v for a random
 * direction v over all of `wrt` at once, with L = Σ y·R. Returns both numbers.
 */
export async function directionalCheck(model: OnnxModel, feeds: Record<string, Feed>, wrt: string[], h: number, seed = 3) {
  const rng = new Rng(seed);
  const fwd = await createSession(serializeModel(model), 'forward');
  const run = async (f: Record<string, Feed>) =>
    (await fwd.session.run(Object.fromEntries(Object.entries(f).map(([k, v]) => [k, toTensor(v)]))))['y']!;
  const y0 = await run(feeds);
  const R = Float32Array.from({ length: y0.data.length }, () => rng.normal());
  const L = async (f: Record<string, Feed>) => {
    const y = (await run(f)).data as Float32Array;
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * R[i]!;
    return s;
  };
  const dirs = Object.fromEntries(wrt.map((w) => [w, Float32Array.from({ length: feeds[w]!.data.length }, () => rng.normal())]));
  const shifted = (sign: number) =>
    Object.fromEntries(
      Object.entries(feeds).map(([k, f]) => [
        k,
        dirs[k] ? { ...f, data: (f.data as Float32Array).map((v, i) => v + sign * h * dirs[k]![i]!) } : f,
      ]),
    ) as Record<string, Feed>;
  const fd = ((await L(shifted(1))) - (await L(shifted(-1)))) / (2 * h);
  const gModel = gradient(model, { of: 'y', wrt, seed: 'input' });
  const gs = await createSession(serializeModel(gModel), 'gradient');
  const out = await gs.session.run(
    Object.fromEntries([
      ...Object.entries(feeds).map(([k, v]) => [k, toTensor(v)]),
      ['y_grad_seed', new ort.Tensor('float32', R, [...y0.dims])],
    ]),
  );
  let analytic = 0;
  for (const w of wrt) {
    const g = out[gradOutputName(w)]!.data as Float32Array;
    for (let i = 0; i < g.length; i++) analytic += g[i]! * dirs[w]![i]!;
  }
  return { fd, analytic };
}
