import { describe, expect, it } from 'vitest';
import { randomizedUNet, TINY_UNET } from '../helpers/unet.js';
import { buildUNet, withUNetWeights } from '../../src/main/engine/nn/unet.js';
import { initializersToInputs } from '../../src/main/engine/onnx/autodiff.js';
import { serializeModel } from '../../src/main/engine/onnx/ir.js';
import { withFedWeightNchwc } from '../../src/main/engine/onnx/nchwc.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { Rng } from '../../src/main/engine/rng.js';
import { alphaBarsFromBetas, ddpmLinearBetas } from '../../src/main/engine/models/schedules.js';
import {
  clipGradNorm,
  emaDecayAt,
  maxTrainingStep,
  ScoreTrainer,
  warmupLr,
  type ScoreTrainerOptions,
} from '../../src/main/engine/train/score-trainer.js';
import { buildScoreTrainingModel, gradOutputName, LOSS_OUTPUT, TARGET_INPUT } from '../../src/main/engine/train/training-graph.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/main/engine/io/safetensors.js';

const TINY = TINY_UNET;
const OPTS: ScoreTrainerOptions = { batchSize: 4, lr: 1e-3, warmupSteps: 3, emaDecay: 0.9, gradClip: 1, tMax: 1, seed: 5, hflip: true };

function images(n: number, size: number, seed: number, mean = 0, std = 0.5): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: size }, () => mean + std * rng.normal()));
}

describe('the score-model training graph', () => {
  for (const patch of [1, 2]) {
    it(`weight gradients of a tiny U-Net (patch ${patch}) match central differences of the loss`, async () => {
      const built = randomizedUNet({ ...TINY, patch, attn: patch === 1 ? [4] : [2] }, 3);
      const model = buildScoreTrainingModel(built.model, 'out', built.params);
      const s = await createSession(serializeModel(model), 'train');
      const rng = new Rng(9);
      const N = 2;
      const x = Float32Array.from({ length: N * 3 * 64 }, () => rng.normal());
      const target = Float32Array.from({ length: N * 3 * 64 }, () => rng.normal());
      const feeds = (weights: Map<string, Float32Array>) => {
        const f: Record<string, ort.Tensor> = {
          x: new ort.Tensor('float32', x, [N, 3, 8, 8]),
          t: new ort.Tensor('int64', BigInt64Array.from([17n, 802n]), [N]),
          [TARGET_INPUT]: new ort.Tensor('float32', target, [N, 3, 8, 8]),
        };
        for (const [k, v] of weights) f[k] = new ort.Tensor('float32', v, built.model.graph.initializers.get(k)!.dims);
        return f;
      };
      const w0 = new Map(built.params.map((p) => [p, Float32Array.from(built.model.graph.initializers.get(p)!.data as Float32Array)]));
      const out = await s.session.run(feeds(w0));
      // a directional derivative over all weights at once, in float64 sums; h balances float32
      // rounding of the loss (~1e-7 relative) against the curvature term (O(h²))
      const dir = new Map([...w0].map(([k, v]) => [k, Float32Array.from(v, () => rng.normal())]));
      let analytic = 0;
      for (const [k, d] of dir) {
        const g = out[gradOutputName(k)]!.data as Float32Array;
        for (let i = 0; i < g.length; i++) analytic += g[i]! * d[i]!;
      }
      const h = 2e-3;
      const lossAt = async (sign: number) => {
        const shifted = new Map([...w0].map(([k, v]) => [k, Float32Array.from(v, (a, i) => a + sign * h * dir.get(k)![i]!)]));
        const f = feeds(new Map());
        for (const [k, v] of shifted) f[k] = new ort.Tensor('float32', v, built.model.graph.initializers.get(k)!.dims);
        const o = await s.session.run(f);
        return (o[LOSS_OUTPUT]!.data as Float32Array)[0]!;
      };
      const fd = ((await lossAt(1)) - (await lossAt(-1))) / (2 * h);
      expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
      expect(Math.abs(fd - analytic)).toBeLessThan(2e-3 * Math.abs(analytic) + 1e-4);
      // every weight gets a gradient, none is silently zero
      for (const p of built.params) expect((out[gradOutputName(p)]!.data as Float32Array).some((v) => v !== 0)).toBe(true);
    });
  }
});

describe('optimizer pieces', () => {
  it('warm-up, EMA warm-up and clipping are the formulas of tools/train-score-model.py', () => {
    expect(warmupLr(1e-3, 4, 0)).toBeCloseTo(2.5e-4, 12);
    expect(warmupLr(1e-3, 4, 10)).toBe(1e-3);
    expect(emaDecayAt(0.999, 0)).toBeCloseTo(0.1, 12);
    expect(emaDecayAt(0.999, 1e6)).toBe(0.999);
    const g = [Float32Array.from([3, 0]), Float32Array.from([0, 4])];
    expect(clipGradNorm(g, 1)).toBeCloseTo(5, 6);
    expect(Math.hypot(...g[0]!, ...g[1]!)).toBeCloseTo(1, 5);
    expect(maxTrainingStep(0.8)).toBe(799);
  });

  it('one training step is one hand-computed AdamW update with warm-up and clipping, and an EMA step', async () => {
    const built = randomizedUNet(TINY, 4);
    const tr = await ScoreTrainer.create(built, { ...OPTS, weightDecay: 0.01 });
    const data = images(6, 3 * 64, 1);
    const before = new Map([...tr.params].map(([k, v]) => [k, Float32Array.from(v)]));
    // the gradient of this very batch, from the graph the trainer runs (its convolutions as the trainer rewrites them)
    const { x, t, target: eps } = tr.makeBatch(data, 0);
    const s = await createSession(
      serializeModel(await withFedWeightNchwc(buildScoreTrainingModel(built.model, 'out', built.params))),
      'train',
    );
    const f: Record<string, ort.Tensor> = {
      x: new ort.Tensor('float32', x, [4, 3, 8, 8]),
      t: new ort.Tensor('int64', t as BigInt64Array, [4]),
      [TARGET_INPUT]: new ort.Tensor('float32', eps, [4, 3, 8, 8]),
    };
    for (const [k, v] of before) f[k] = new ort.Tensor('float32', v, built.model.graph.initializers.get(k)!.dims);
    const out = await s.session.run(f);
    const grads = built.params.map((p) => Float32Array.from(out[gradOutputName(p)]!.data as Float32Array));
    let sq = 0;
    for (const g of grads) for (const v of g) sq += v * v;
    const norm = Math.sqrt(sq);
    const clip = norm > 1 ? 1 / (norm + 1e-6) : 1;
    await tr.trainStep(data);
    const lr = OPTS.lr / 3; // warm-up step 1 of 3
    built.params.forEach((p, k) => {
      const w = before.get(p)!;
      const got = tr.params.get(p)!;
      const ema = tr.ema.get(p)!;
      for (let i = 0; i < w.length; i += Math.max(1, Math.floor(w.length / 7))) {
        const gi = grads[k]![i]! * clip;
        const m = 0.1 * gi;
        const v = 0.001 * gi * gi;
        const update = m / 0.1 / (Math.sqrt(v / 0.001) + 1e-8);
        const want = w[i]! - lr * (update + 0.01 * w[i]!);
        expect(got[i]!).toBeCloseTo(want, 5);
        // EMA decay at step 0 is min(0.9, 1/10) = 0.1
        expect(ema[i]!).toBeCloseTo(0.1 * w[i]! + 0.9 * got[i]!, 5);
      }
    });
    await tr.dispose();
  });
});

describe('the score trainer', () => {
  it('on Gaussian data approaches the closed-form optimal ε-predictor', async () => {
    // x0 ~ N(μ, s²) per pixel; the optimal ε̂(x_i) = sqrt(1−ᾱ)(x_i − sqrt(ᾱ)μ)/(ᾱs² + 1 − ᾱ),
    // with error 1 − (1−ᾱ)/(ᾱs² + 1 − ᾱ) per element (dg-math §1–2)
    const mu = 0.3;
    const s2 = 0.25;
    const built = buildUNet(TINY, 0);
    const tr = await ScoreTrainer.create(built, { ...OPTS, batchSize: 16, lr: 3e-3, warmupSteps: 20, emaDecay: 0.95, seed: 1 });
    const data = images(256, 3 * 64, 2, mu, Math.sqrt(s2));
    const held = images(64, 3 * 64, 3, mu, Math.sqrt(s2));
    const times = [0.2, 0.5];
    const ab = alphaBarsFromBetas(ddpmLinearBetas(1000));
    const optimal = times.map((tt) => {
      const a = ab[Math.round(tt * 999)]!;
      return 1 - (1 - a) / (a * s2 + 1 - a);
    });
    const start = await tr.heldoutError(held, times);
    for (let i = 0; i < 300; i++) await tr.trainStep(data);
    const end = await tr.heldoutError(held, times);
    times.forEach((_, k) => {
      // the untrained network predicts ~0 (zero-initialised output): error ≈ 1; a trained one closes
      // most of the gap to the optimum (the held-out estimate's own noise is ~1/sqrt(64·192) ≈ 1 %)
      expect(start[k]!).toBeGreaterThan(0.95);
      const closed = (start[k]! - end[k]!) / (start[k]! - optimal[k]!);
      expect(closed).toBeGreaterThan(0.8);
      expect(end[k]!).toBeGreaterThan(optimal[k]! - 0.03);
    });
    await tr.dispose();
  });

  it('a resumed run makes the same losses and weights as an uninterrupted one', async () => {
    const data = images(10, 3 * 64, 4);
    const full = await ScoreTrainer.create(buildUNet(TINY, 2), OPTS);
    const lossesFull: number[] = [];
    for (let i = 0; i < 6; i++) lossesFull.push((await full.trainStep(data)).loss);

    const a = await ScoreTrainer.create(buildUNet(TINY, 2), OPTS);
    const lossesResumed: number[] = [];
    for (let i = 0; i < 3; i++) lossesResumed.push((await a.trainStep(data)).loss);
    const bytes = encodeSafetensors(a.checkpoint({}, 'F32'));
    await a.dispose();
    const b = await ScoreTrainer.create(buildUNet(TINY, 99), OPTS); // other initial weights: all must come from the file
    b.restore(decodeSafetensors(bytes, 'ckpt'), 'ckpt');
    expect(b.step).toBe(3);
    for (let i = 0; i < 3; i++) lossesResumed.push((await b.trainStep(data)).loss);
    expect(lossesResumed).toEqual(lossesFull);
    for (const [k, v] of full.params) expect(b.params.get(k)).toEqual(v);
    for (const [k, v] of full.ema) expect(b.ema.get(k)).toEqual(v);
    await Promise.all([full.dispose(), b.dispose()]);
  });

  it('with bfloat16 moments (the committed checkpoints) the resumed losses agree to float precision', async () => {
    const data = images(10, 3 * 64, 4);
    const full = await ScoreTrainer.create(buildUNet(TINY, 2), OPTS);
    for (let i = 0; i < 5; i++) await full.trainStep(data);
    const a = await ScoreTrainer.create(buildUNet(TINY, 2), OPTS);
    for (let i = 0; i < 3; i++) await a.trainStep(data);
    const b = await ScoreTrainer.create(buildUNet(TINY, 2), OPTS);
    b.restore(decodeSafetensors(encodeSafetensors(a.checkpoint()), 'ckpt'), 'ckpt');
    for (let i = 0; i < 2; i++) await b.trainStep(data);
    for (const [k, v] of full.params) {
      const w = b.params.get(k)!;
      for (let i = 0; i < v.length; i++) expect(Math.abs(w[i]! - v[i]!)).toBeLessThan(1e-4);
    }
    await Promise.all([full.dispose(), a.dispose(), b.dispose()]);
  });

  it('the export is the training graph forward with the EMA weights', async () => {
    const built = buildUNet(TINY, 6);
    const tr = await ScoreTrainer.create(built, OPTS);
    const data = images(8, 3 * 64, 5);
    for (let i = 0; i < 3; i++) await tr.trainStep(data);
    const exported = await createSession(serializeModel(tr.exportModel()), 'export');
    const x = images(2, 3 * 64, 6);
    const xs = new Float32Array([...x[0]!, ...x[1]!]);
    const got = (
      await exported.session.run({
        x: new ort.Tensor('float32', xs, [2, 3, 8, 8]),
        t: new ort.Tensor('int64', BigInt64Array.from([100n, 700n]), [2]),
      })
    )['out']!.data as Float32Array;
    const want = await tr.predict(xs, [100, 700], 'ema');
    // the same arithmetic up to ORT's kernel choices for constant vs fed weights
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-6));
    // and it differs from the raw weights' output (the EMA is really used)
    const raw = await tr.predict(xs, [100, 700], 'raw');
    expect(Array.from(raw)).not.toEqual(Array.from(want));
    // the same graph as withUNetWeights + initializersToInputs: a sanity check on names
    expect(
      initializersToInputs(
        withUNetWeights(built, (p) => tr.ema.get(p), 'ema'),
        [],
      ).graph.inputs.map((i) => i.name),
    ).toEqual(['x', 't']);
    await tr.dispose();
  });
});
