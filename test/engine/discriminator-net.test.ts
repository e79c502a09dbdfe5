import { describe, expect, it } from 'vitest';
import { gradient } from '../../src/main/engine/onnx/autodiff.js';
import { serializeModel, type OnnxModel } from '../../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { buildDiscriminatorNet, tentTaps, type ConvEncoderArch } from '../../src/main/engine/nn/discriminator-net.js';
import { Rng } from '../../src/main/engine/rng.js';

/** dg-math §10: the discriminator's pooled view and the smoothness of its input gradient (the guidance term). */
const R = 32;
const arch = (downsampleFilter: 'box' | 'tent'): ConvEncoderArch => ({
  kind: 'conv-encoder',
  inChannels: 3,
  resolution: R,
  channels: [8, 16],
  blocks: 1,
  attentionAt: [],
  groups: 4,
  timeDim: 16,
  classes: 0,
  downsample: 4,
  downsampleFilter,
});

async function run(model: OnnxModel, x: Float32Array, outputs: string[]) {
  const s = await createSession(serializeModel(model), 'discriminator');
  const n = x.length / (3 * R * R);
  const out = await s.session.run({
    x: new ort.Tensor('float32', x, [n, 3, R, R]),
    t: new ort.Tensor('float32', new Float32Array(n).fill(0.2), [n]),
  });
  await s.session.release();
  return outputs.map((o) => out[o]!.data as Float32Array);
}

const inputGradient = (model: OnnxModel) => gradient(model, { of: 'logit', wrt: ['x'] });

/** mean |4-neighbour Laplacian| ÷ mean |value| over one channel plane: how much edge the gradient field carries */
function laplacianRatio(g: Float32Array): number {
  let lap = 0;
  let mag = 0;
  for (let i = 1; i < R - 1; i++)
    for (let j = 1; j < R - 1; j++) {
      const v = g[i * R + j]!;
      lap += Math.abs(g[(i - 1) * R + j]! + g[(i + 1) * R + j]! + g[i * R + j - 1]! + g[i * R + j + 1]! - 4 * v);
      mag += Math.abs(v);
    }
  return lap / mag;
}

describe('the discriminator’s pooled view (dg-math §10)', () => {
  it('tent taps: the triangle f − |i − (2f − 1)/2|, normalised', () => {
    expect(tentTaps(2)).toEqual([1, 3, 3, 1].map((v) => v / 8));
    expect(tentTaps(4)).toEqual([1, 3, 5, 7, 7, 5, 3, 1].map((v) => v / 32));
  });

  it('a flat image is seen as the same flat image by both filters (the tent is divided by its coverage at the borders)', async () => {
    const x = new Float32Array(2 * 3 * R * R);
    x.fill(0.7, 0, 3 * R * R);
    x.fill(-0.4, 3 * R * R);
    const [box] = await run(buildDiscriminatorNet(arch('box'), 5).model, x, ['logit']);
    const [tent] = await run(buildDiscriminatorNet(arch('tent'), 5).model, x, ['logit']);
    // same seed, same weights: only the pooling differs, and a flat image pools to itself under both
    for (let i = 0; i < 2; i++) expect(tent![i]!).toBeCloseTo(box![i]!, 5);
  });

  it('box pooling gives an input gradient constant on 4×4 blocks; the tent’s has no block edges', async () => {
    const rng = new Rng(2);
    const x = Float32Array.from({ length: 3 * R * R }, () => 0.5 * rng.normal());
    const [gBox] = await run(inputGradient(buildDiscriminatorNet(arch('box'), 5).model), x, ['grad_x']);
    const [gTent] = await run(inputGradient(buildDiscriminatorNet(arch('tent'), 5).model), x, ['grad_x']);
    let spreadBox = 0;
    let spreadTent = 0;
    for (let bi = 0; bi < R; bi += 4)
      for (let bj = 0; bj < R; bj += 4)
        for (let i = 0; i < 4; i++)
          for (let j = 0; j < 4; j++) {
            const k = (bi + i) * R + bj + j;
            spreadBox = Math.max(spreadBox, Math.abs(gBox![k]! - gBox![bi * R + bj]!));
            spreadTent = Math.max(spreadTent, Math.abs(gTent![k]! - gTent![bi * R + bj]!));
          }
    const scale = Math.max(...gBox!.slice(0, R * R).map(Math.abs));
    expect(spreadBox).toBeLessThan(1e-6 * scale);
    expect(spreadTent).toBeGreaterThan(0.01 * scale);
    // the box's block edges are most of its Laplacian; the tent's field is piecewise linear, with kinks only
    const [rBox, rTent] = [laplacianRatio(gBox!), laplacianRatio(gTent!)];
    expect(rTent).toBeLessThan(0.5 * rBox);
  });

  it('the tent net’s input gradient matches a central difference along a random direction', async () => {
    const rng = new Rng(4);
    const net = buildDiscriminatorNet(arch('tent'), 7).model;
    const x = Float32Array.from({ length: 2 * 3 * R * R }, () => 0.5 * rng.normal());
    const v = Float32Array.from({ length: x.length }, () => rng.normal());
    const [g] = await run(inputGradient(net), x, ['grad_x']);
    const h = 1e-2;
    const [yp] = await run(
      net,
      x.map((xi, i) => xi + h * v[i]!),
      ['logit'],
    );
    const [ym] = await run(
      net,
      x.map((xi, i) => xi - h * v[i]!),
      ['logit'],
    );
    const fd = (yp![0]! + yp![1]! - ym![0]! - ym![1]!) / (2 * h);
    const analytic = g!.reduce((s, gi, i) => s + gi * v[i]!, 0);
    expect(Math.abs(fd - analytic)).toBeLessThan(0.01 * Math.abs(analytic) + 1e-4);
  });

  it('the tent needs an even factor', () => {
    expect(() => buildDiscriminatorNet({ ...arch('tent'), downsample: 1 } as ConvEncoderArch, 1)).not.toThrow(); // f 1: no pooling
    expect(() => buildDiscriminatorNet({ ...arch('tent'), resolution: 30, downsample: 3 }, 1)).toThrow(/even downsampling factor, got 3/);
  });
});
