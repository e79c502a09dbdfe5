import { describe, expect, it } from 'vitest';
import { NetBuilder } from '../../src/main/engine/nn/layers.js';
import { serializeModel } from '../../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { Rng } from '../../src/main/engine/rng.js';
import { Adam } from '../../src/main/engine/train/adam.js';
import {
  buildTrainingModel,
  gradOutputName,
  LABEL_INPUT,
  LOSS_OUTPUT,
  WEIGHT_INPUT,
  type RatioLoss,
} from '../../src/main/engine/train/training-graph.js';

function mlp(seed: number) {
  const net = new NetBuilder('mlp', seed);
  const { g } = net;
  const x = g.input('x', 'float32', ['N', 2]);
  let h = net.silu(net.linear(x, 2, 16));
  h = net.silu(net.linear(h, 16, 16));
  g.identity(net.linear(h, 16, 1), 'logit');
  g.output('logit', 'float32', ['N', 1]);
  return { net, model: g.build() };
}

async function trainingSession(loss: RatioLoss, seed = 1, r1Gamma = 0) {
  const { net, model } = mlp(seed);
  const train = buildTrainingModel(model, 'logit', net.params, loss, { r1Gamma });
  const s = await createSession(serializeModel(train), 'train');
  const params = new Map(net.params.map((p) => [p, Float32Array.from(model.graph.initializers.get(p)!.data as Float32Array)]));
  const shapes = new Map(net.params.map((p) => [p, model.graph.initializers.get(p)!.dims]));
  const run = async (x: Float32Array, y: Float32Array, w: Float32Array, ps = params) => {
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor('float32', x, [y.length, 2]),
      [LABEL_INPUT]: new ort.Tensor('float32', y, [y.length]),
      [WEIGHT_INPUT]: new ort.Tensor('float32', w, [y.length]),
    };
    for (const [k, v] of ps) feeds[k] = new ort.Tensor('float32', v, shapes.get(k)!);
    const out = await s.session.run(feeds);
    const grads = new Map(net.params.map((p) => [p, out[gradOutputName(p)]!.data as Float32Array]));
    return { loss: (out[LOSS_OUTPUT]!.data as Float32Array)[0]!, grads, logits: out['logit']!.data as Float32Array };
  };
  return { params, run };
}

function batch(rng: Rng, n: number) {
  // real: around (1, 1); fake: around (-1, -1)
  const x = new Float32Array(2 * n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    const c = y[i] ? 1 : -1;
    x[2 * i] = c + 0.5 * rng.normal();
    x[2 * i + 1] = c + 0.5 * rng.normal();
  }
  return { x, y, w: new Float32Array(n).fill(1) };
}

describe('training graphs (dg-math §4 losses) and Adam', () => {
  for (const loss of ['bce', 'lsif', 'ukl'] as const) {
    it(`${loss}: the weight gradients match a finite difference of the loss along a random direction`, async () => {
      const { params, run } = await trainingSession(loss);
      const rng = new Rng(3);
      const { x, y, w } = batch(rng, 16);
      const { grads } = await run(x, y, w);
      const dir = new Map([...params].map(([k, v]) => [k, Float32Array.from(v, () => rng.normal())]));
      const shifted = (s: number) => new Map([...params].map(([k, v]) => [k, v.map((p, i) => p + s * dir.get(k)![i]!)]));
      // float32, h = 1e-3 along a unit-variance direction over ~350 weights: truncation ~h², rounding ~ε|L|/h ≈ 1e-4
      const h = 1e-3;
      const fd = ((await run(x, y, w, shifted(h))).loss - (await run(x, y, w, shifted(-h))).loss) / (2 * h);
      let analytic = 0;
      for (const [k, d] of dir) grads.get(k)!.forEach((g, i) => (analytic += g * d[i]!));
      expect(Math.abs(fd - analytic)).toBeLessThan(0.01 * Math.abs(analytic) + 2e-3);
    });
  }

  it('R1 (dg-math §10): the loss adds (γ/2)·mean over real items of ‖∇x logit‖², and its weight gradient (double backprop) matches a finite difference', async () => {
    const gamma = 3;
    const plain = await trainingSession('bce', 4);
    const r1 = await trainingSession('bce', 4, gamma);
    const rng = new Rng(6);
    const { x, y, w } = batch(rng, 16);
    // ∇x logit of each real item by central differences of the network (the logit output)
    const h = 1e-2;
    let sum = 0;
    let reals = 0;
    for (let i = 0; i < 16; i++) {
      if (y[i]! <= 0.5) continue;
      reals++;
      for (const d of [0, 1]) {
        const xp = x.slice();
        const xm = x.slice();
        xp[2 * i + d]! += h;
        xm[2 * i + d]! -= h;
        const g = ((await plain.run(xp, y, w)).logits[i]! - (await plain.run(xm, y, w)).logits[i]!) / (2 * h);
        sum += g * g;
      }
    }
    const penalty = (gamma / 2) * (sum / reals);
    expect(penalty).toBeGreaterThan(1e-3);
    expect((await r1.run(x, y, w)).loss - (await plain.run(x, y, w)).loss).toBeCloseTo(penalty, 3);
    const { grads } = await r1.run(x, y, w);
    const dir = new Map([...r1.params].map(([k, v]) => [k, Float32Array.from(v, () => rng.normal())]));
    const shifted = (s: number) => new Map([...r1.params].map(([k, v]) => [k, v.map((p, i) => p + s * dir.get(k)![i]!)]));
    const e = 1e-3;
    const fd = ((await r1.run(x, y, w, shifted(e))).loss - (await r1.run(x, y, w, shifted(-e))).loss) / (2 * e);
    let analytic = 0;
    for (const [k, d] of dir) grads.get(k)!.forEach((g, i) => (analytic += g * d[i]!));
    expect(Math.abs(fd - analytic)).toBeLessThan(0.01 * Math.abs(analytic) + 2e-3);
  });

  it('BCE: per-sample loss is softplus(z) - y·z (log 2 at z = 0)', async () => {
    const { params, run } = await trainingSession('bce');
    for (const v of params.values()) v.fill(0);
    const { loss } = await run(new Float32Array(8), Float32Array.from([1, 0, 1, 0]), new Float32Array(4).fill(1));
    expect(loss).toBeCloseTo(Math.log(2), 6);
  });

  it('Adam: the first step moves each weight by lr against the sign of its gradient', () => {
    const p = new Map([['w', Float32Array.from([1, -2, 3])]]);
    new Adam(p, { lr: 0.1 }).step(new Map([['w', Float32Array.from([0.5, -4, 1e-3])]]));
    expect(Array.from(p.get('w')!).map((v) => +v.toFixed(4))).toEqual([0.9, -1.9, 2.9]);
  });

  it('Adam on the BCE training graph separates two clusters', async () => {
    const { params, run } = await trainingSession('bce', 2);
    const adam = new Adam(params, { lr: 1e-2 });
    const rng = new Rng(5);
    const losses: number[] = [];
    for (let step = 0; step < 150; step++) {
      const { x, y, w } = batch(rng, 64);
      const { loss, grads } = await run(x, y, w);
      losses.push(loss);
      adam.step(grads);
    }
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    // the clusters overlap little (Bayes error ≈ 0.2 %): the BCE falls well below chance (log 2)
    expect(mean(losses.slice(-20))).toBeLessThan(0.1);
    expect(mean(losses.slice(-20))).toBeLessThan(0.5 * mean(losses.slice(0, 10)));
  });
});
