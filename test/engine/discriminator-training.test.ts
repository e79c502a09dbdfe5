import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { discriminatorGuidance, type Critic } from '../../src/main/engine/sampling/guidance.js';
import { buildDiscriminatorNet } from '../../src/main/engine/nn/discriminator-net.js';
import { criticFromForward } from '../../src/main/engine/models/onnx-critic.js';
import { serializeModel } from '../../src/main/engine/onnx/ir.js';
import { BatchRng, Rng } from '../../src/main/engine/rng.js';
import { importanceSampledLvpTime } from '../../src/main/engine/models/schedules.js';
import { loadScoreModel } from '../../src/main/engine/models/score-model.js';
import { sdedit } from '../../src/main/engine/sampling/sdedit.js';
import {
  cosineLearningRate,
  DiscriminatorTrainer,
  sampleTrainingTime,
  smoothedLabels,
} from '../../src/main/engine/train/discriminator-trainer.js';
import { exactLogRatioCritic, sampleMixture, writeToyScoreModel } from '../../src/main/engine/models/toy-mixture.js';
import { tempDir } from '../helpers/tmp.js';
import { P, Q } from '../helpers/toy.js';

const items = (data: Float32Array, d: number) => Array.from({ length: data.length / d }, (_, i) => data.slice(i * d, (i + 1) * d));

/** Unbiased MMD² with a Gaussian kernel (bandwidth 0.3) between two 2-D samples. */
function mmd2(a: Float32Array, b: Float32Array, n = 600): number {
  const k = (x: Float32Array, i: number, y: Float32Array, j: number) =>
    Math.exp(-((x[2 * i]! - y[2 * j]!) ** 2 + (x[2 * i + 1]! - y[2 * j + 1]!) ** 2) / 0.18);
  let s = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i !== j) s += k(a, i, a, j) + k(b, i, b, j);
      s -= 2 * k(a, i, b, j);
    }
  }
  return s / (n * (n - 1));
}

async function criticFrom(trainer: DiscriminatorTrainer): Promise<Critic> {
  return criticFromForward(trainer.exportForward(), 'trained');
}

describe('discriminator training through ORT (paper Algorithm 1, dg-math §4)', async () => {
  const dir = await tempDir();

  it('restricted importance sampling stays in [lo, hi] and is uniform in the importance CDF', () => {
    for (const u of [0, 0.3, 0.999]) {
      const t = sampleTrainingTime(u, [0.05, 0.6], 'importance');
      expect(t).toBeGreaterThanOrEqual(0.05 - 1e-12);
      expect(t).toBeLessThanOrEqual(0.6 + 1e-12);
    }
    expect(sampleTrainingTime(0.5, [1e-5, 1], 'importance')).toBeCloseTo(importanceSampledLvpTime(0.5), 10);
    expect(sampleTrainingTime(0.5, [0.2, 0.4], 'uniform')).toBeCloseTo(0.3, 12);
  });

  it('2-D toy: a 4-layer, 256-unit MLP discriminator recovers at least half of the way from q to p', async () => {
    const rng = new Rng(1);
    const real = items(sampleMixture(P, 20000, rng).data, 2);
    const fake = items(sampleMixture(Q, 20000, rng).data, 2);
    const trainer = await DiscriminatorTrainer.create(
      buildDiscriminatorNet({ kind: 'mlp', inDim: 2, hidden: 256, layers: 4, timeDim: 32 }, 1),
      [2],
      {
        loss: 'bce',
        batchSize: 256,
        lr: 2e-3,
        tauRange: [1e-5, 1],
        timeSampling: 'importance',
        seed: 2,
      },
    );
    for (let s = 0; s < 1800; s++) await trainer.trainStep(real, fake);
    const model = await loadScoreModel(await writeToyScoreModel(join(dir, 'q'), Q, { kind: 'lvp-eps' }));
    const N = 2000;
    const generate = async (critic: Critic | null) =>
      (
        await sdedit(
          model.denoiser(),
          model.schedule,
          { data: new Float32Array(2 * N), shape: [N, 2] },
          { t0: 1, steps: 30, sampler: 'heun' },
          {
            rng: BatchRng.consecutive(7, N),
            guidance: critic ? discriminatorGuidance(critic, N, { w1: 1, w2: 1, window: [1e-5, 1] }) : undefined,
          },
        )
      ).data;
    const reference = sampleMixture(P, N, new Rng(99)).data;
    const unguided = mmd2(await generate(null), reference);
    const trained = mmd2(await generate(await criticFrom(trainer)), reference);
    const exact = mmd2(await generate({ ...exactLogRatioCritic(P, Q), exact: false }), reference);
    // distances to p: unguided (q) ≫ exact ratio ≈ 0; the trained one must close half the gap
    expect(unguided - exact).toBeGreaterThan(0.05);
    expect((unguided - trained) / (unguided - exact)).toBeGreaterThanOrEqual(0.5);
    await trainer.dispose();
  }, 180_000);

  it('the cosine learning rate: lr at the start, half at mid-run, 0 at the last step and after; constant without a total', () => {
    expect(cosineLearningRate(2e-3, 0, 3000)).toBe(2e-3);
    expect(cosineLearningRate(2e-3, 1500, 3000)).toBeCloseTo(1e-3, 15);
    expect(cosineLearningRate(2e-3, 750, 3000)).toBeCloseTo(1e-3 * (1 + Math.SQRT1_2), 15);
    expect(cosineLearningRate(2e-3, 3000, 3000)).toBeCloseTo(0, 15);
    expect(cosineLearningRate(2e-3, 4000, 3000)).toBeCloseTo(0, 15);
    expect(cosineLearningRate(2e-3, 4000, 0)).toBe(2e-3);
  });

  it('label smoothing ε (dg-math §10): on data it separates, the logits settle at ±log((1−ε)/ε); without, they keep growing', async () => {
    expect(Array.from(smoothedLabels(4, 2, 0.1))).toEqual([0.9, 0.9, 0.1, 0.1].map(Math.fround));
    const rng = new Rng(5);
    const cloud = (cx: number) => Array.from({ length: 400 }, () => Float32Array.from([cx + 0.3 * rng.normal(), cx + 0.3 * rng.normal()]));
    const [real, fake] = [cloud(3), cloud(-3)];
    const trained = async (labelSmoothing: number) => {
      const trainer = await DiscriminatorTrainer.create(
        buildDiscriminatorNet({ kind: 'mlp', inDim: 2, hidden: 32, layers: 2, timeDim: 8 }, 3),
        [2],
        { loss: 'bce', labelSmoothing, batchSize: 64, lr: 1e-2, tauRange: [1e-5, 1e-3], timeSampling: 'uniform', seed: 6 },
      );
      for (let k = 0; k < 600; k++) await trainer.trainStep(real, fake);
      const l = await trainer.logits([...real.slice(0, 50), ...fake.slice(0, 50)], new Array(100).fill(1e-4), 1);
      await trainer.dispose();
      const mean = (a: Float32Array) => a.reduce((x, y) => x + y, 0) / a.length;
      return { real: mean(l.slice(0, 50)), fake: mean(l.slice(50)) };
    };
    const smooth = await trained(0.1);
    expect(smooth.real).toBeCloseTo(Math.log(9), 1);
    expect(smooth.fake).toBeCloseTo(-Math.log(9), 1);
    const hard = await trained(0);
    expect(hard.real).toBeGreaterThan(3 * Math.log(9)); // 19.8 measured
    await expect(
      DiscriminatorTrainer.create(buildDiscriminatorNet({ kind: 'mlp', inDim: 2, hidden: 8, layers: 1, timeDim: 8 }, 1), [2], {
        loss: 'lsif',
        labelSmoothing: 0.1,
        batchSize: 8,
        lr: 1e-3,
        tauRange: [1e-5, 1],
        timeSampling: 'uniform',
        seed: 0,
      }),
    ).rejects.toThrow(/needs the BCE loss/);
  }, 120_000);

  it('R1 (dg-math §10) through a convolutional discriminator: real images’ input gradients come out smaller', async () => {
    const rng = new Rng(8);
    const make = (grain: number) =>
      Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.tanh(((i % 16) / 8 - 1) * 0.8 + grain * rng.normal()));
    const real = Array.from({ length: 64 }, () => make(0.05));
    const fake = Array.from({ length: 64 }, () => make(0.6));
    const arch = {
      kind: 'conv-encoder' as const,
      inChannels: 3,
      resolution: 16,
      channels: [8, 16],
      blocks: 1,
      attentionAt: [],
      groups: 4,
      timeDim: 16,
      classes: 0,
    };
    const gradNorm = async (r1Gamma: number) => {
      const trainer = await DiscriminatorTrainer.create(buildDiscriminatorNet(arch, 2), [3, 16, 16], {
        loss: 'bce',
        r1Gamma,
        batchSize: 16,
        lr: 2e-3,
        tauRange: [1e-5, 0.05],
        timeSampling: 'uniform',
        seed: 3,
      });
      for (let k = 0; k < 80; k++) await trainer.trainStep(real, fake);
      const critic = await criticFrom(trainer);
      await trainer.dispose();
      const n = 16;
      const x = { data: new Float32Array(n * 768), shape: [n, 3, 16, 16] };
      real.slice(0, n).forEach((r, i) => x.data.set(r, i * 768));
      const { grad } = await critic.evaluate(x, new Float64Array(n).fill(0.01));
      return Math.sqrt(grad.data.reduce((a, v) => a + v * v, 0) / n);
    };
    const [without, withR1] = [await gradNorm(0), await gradNorm(10)];
    expect(withR1).toBeLessThan(0.5 * without); // 0.123 → 0.039 measured
  }, 120_000);

  it('image-sized run: the loss falls and validation accuracy rises', async () => {
    // real: smooth colour gradients; fake: the same with high-frequency grain (an "unguided translation" look)
    const rng = new Rng(4);
    const make = (grain: number) => {
      const x = new Float32Array(3 * 16 * 16);
      const [a, b, c] = [rng.normal() * 0.5, rng.normal() * 0.5, rng.normal() * 0.3];
      for (let ch = 0; ch < 3; ch++)
        for (let i = 0; i < 256; i++)
          x[ch * 256 + i] = Math.tanh(a * ((i % 16) / 8 - 1) + b * (Math.floor(i / 16) / 8 - 1) + c * ch + grain * rng.normal());
      return x;
    };
    const real = Array.from({ length: 200 }, () => make(0));
    const fake = Array.from({ length: 200 }, () => make(0.6));
    const [valReal, valFake] = [Array.from({ length: 40 }, () => make(0)), Array.from({ length: 40 }, () => make(0.6))];
    const arch = {
      kind: 'conv-encoder' as const,
      inChannels: 3,
      resolution: 16,
      channels: [16, 32],
      blocks: 1,
      attentionAt: [8],
      groups: 4,
      timeDim: 32,
      classes: 0,
    };
    const trainer = await DiscriminatorTrainer.create(buildDiscriminatorNet(arch, 3), [3, 16, 16], {
      loss: 'bce',
      batchSize: 32,
      lr: 2e-3,
      tauRange: [1e-5, 0.5],
      timeSampling: 'importance',
      seed: 5,
      hflip: true,
    });
    const before = await trainer.evaluate(valReal, valFake, 3);
    const losses: number[] = [];
    for (let s = 0; s < 150; s++) losses.push(await trainer.trainStep(real, fake));
    const after = await trainer.evaluate(valReal, valFake, 3);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-30))).toBeLessThan(mean(losses.slice(0, 30)) - 0.05);
    expect(after.accuracy).toBeGreaterThan(before.accuracy + 0.1);
    // grain is visible at small τ and drowned in noise at large τ
    expect(after.bands[0]!.accuracy).toBeGreaterThan(0.8);
    await trainer.dispose();
  }, 120_000);

  it('a checkpoint restores the exact training state', async () => {
    const rng = new Rng(6);
    const real = items(sampleMixture(P, 500, rng).data, 2);
    const fake = items(sampleMixture(Q, 500, rng).data, 2);
    const make = () =>
      DiscriminatorTrainer.create(buildDiscriminatorNet({ kind: 'mlp', inDim: 2, hidden: 16, layers: 2, timeDim: 8 }, 1), [2], {
        loss: 'bce',
        batchSize: 32,
        lr: 1e-2,
        tauRange: [1e-5, 1],
        timeSampling: 'uniform',
        seed: 3,
      });
    const a = await make();
    for (let s = 0; s < 5; s++) await a.trainStep(real, fake);
    const ck = a.checkpoint();
    const b = await make();
    b.restore(ck);
    const va = await a.evaluate(real.slice(0, 50), fake.slice(0, 50), 2);
    const vb = await b.evaluate(real.slice(0, 50), fake.slice(0, 50), 2);
    expect(vb.loss).toBe(va.loss);
    expect(b.step).toBe(5);
  });
});

describe("the paper's design: frozen features + trained head", () => {
  it('trains only the head and learns; guidance differentiates through the frozen part', async () => {
    const { NetBuilder } = await import('../../src/main/engine/nn/layers.js');
    const { buildFrozenFeatureNet } = await import('../../src/main/engine/nn/frozen-features.js');
    // a "pre-trained" extractor: fixed random convolutions, with a classifier head we cut away
    const fe = new NetBuilder('pretrained', 9);
    const x = fe.g.input('image', 'float32', ['N', 3, 16, 16]);
    const f1 = fe.silu(fe.conv2d(x, 3, 16, { stride: 2 }));
    const f2 = fe.silu(fe.conv2d(f1, 16, 32, { stride: 2 }));
    fe.g.identity(fe.linear(fe.pool(f2), 32, 10), 'class_logits');
    fe.g.output('class_logits', 'float32', ['N', 10]);
    const bytes = serializeModel(fe.g.build());
    const arch = { kind: 'frozen-features' as const, featureOnnx: 'pretrained.onnx', featureTensor: f2, hidden: 32, timeDim: 16 };
    const net = await buildFrozenFeatureNet(arch, bytes, [3, 16, 16], 1);
    expect(net.params.every((p) => !p.startsWith('frozen/'))).toBe(true);
    expect(net.model.graph.nodes.some((n) => n.name.startsWith('frozen/'))).toBe(true);
    const rng = new Rng(8);
    const make = (grain: number) => Float32Array.from({ length: 768 }, (_, i) => Math.tanh(0.5 * Math.sin(i / 40) + grain * rng.normal()));
    const real = Array.from({ length: 100 }, () => make(0));
    const fake = Array.from({ length: 100 }, () => make(0.8));
    const trainer = await DiscriminatorTrainer.create(net, [3, 16, 16], {
      loss: 'bce',
      batchSize: 32,
      lr: 3e-3,
      tauRange: [1e-5, 0.3],
      timeSampling: 'uniform',
      seed: 1,
    });
    const before = await trainer.evaluate(real.slice(0, 30), fake.slice(0, 30), 2);
    for (let s = 0; s < 120; s++) await trainer.trainStep(real, fake);
    const after = await trainer.evaluate(real.slice(0, 30), fake.slice(0, 30), 2);
    expect(after.accuracy).toBeGreaterThan(Math.max(0.75, before.accuracy));
    const critic = await criticFrom(trainer);
    const { grad } = await critic.evaluate({ data: real[0]!, shape: [1, 3, 16, 16] }, Float64Array.from([0.1]));
    expect(grad.data.some((v) => v !== 0)).toBe(true);
    await trainer.dispose();
  }, 60_000);

  it('cutting at a tensor the extractor lacks is an error naming it', async () => {
    const { cutAt } = await import('../../src/main/engine/nn/frozen-features.js');
    const { NetBuilder } = await import('../../src/main/engine/nn/layers.js');
    const fe = new NetBuilder('pretrained', 9);
    fe.g.identity(fe.g.input('image', 'float32', ['N', 3]), 'y');
    fe.g.output('y', 'float32', null);
    expect(() => cutAt(fe.g.build(), 'block4', 'resnet.onnx')).toThrow(/feature extractor "resnet.onnx" has no tensor named "block4"/);
  });
});
