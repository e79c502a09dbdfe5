import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFrozenFeatureNet, cutAt, ddpmStepFromTau } from '../../src/main/engine/nn/frozen-features.js';
import { parseModel, serializeModel } from '../../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { Rng } from '../../src/main/engine/rng.js';
import { loadScoreModel } from '../../src/main/engine/models/score-model.js';
import { directionalCheck } from '../helpers/gradcheck.js';

const dir = join(import.meta.dirname, '..', 'fixtures', 'torch-unet-tiny');

describe('a real torch.onnx export (PyTorch 1.13, opset 17)', () => {
  it('loads through its manifest and denoises', async () => {
    const model = await loadScoreModel(join(dir, 'manifest.json'));
    const d = await model.denoiser()(
      { data: new Float32Array(2 * 3 * 64 * 64).fill(0.1), shape: [2, 3, 64, 64] },
      Float64Array.from([1, 5]),
    );
    expect(d.data.every(Number.isFinite)).toBe(true);
    await model.dispose();
  });

  it('its input gradient matches a central difference (weights randomized so no layer is zero)', async () => {
    const m = parseModel(readFileSync(join(dir, 'model.onnx')), 'torch-unet-tiny');
    expect(m.graph.nodes.some((n) => n.opType === 'InstanceNormalization')).toBe(true);
    expect(m.graph.nodes.some((n) => n.opType === 'Einsum')).toBe(true);
    const rng = new Rng(17);
    for (const [k, t] of m.graph.initializers) {
      if (t.dtype === 'float32' && t.data.length > 1)
        m.graph.initializers.set(k, { ...t, data: (t.data as Float32Array).map((v) => v + 0.2 * rng.normal()) });
    }
    m.graph.nodes.forEach((n) => (n.outputs = n.outputs.map((o) => (o === 'out' ? 'y' : o))));
    m.graph.outputs = [{ name: 'y', dtype: 'float32', shape: null }];
    const x = Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37));
    const { fd, analytic } = await directionalCheck(
      m,
      { x: { dtype: 'float32', shape: [2, 3, 64, 64], data: x }, t: { dtype: 'int64', shape: [2], data: BigInt64Array.from([10n, 700n]) } },
      ['x'],
      1e-3,
    );
    // float32 central difference along one direction over 24k inputs: ~1 % (see autodiff-networks)
    expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
    expect(Math.abs(fd - analytic)).toBeLessThan(0.01 * Math.abs(analytic) + 1e-3);
  });
});

describe("a time-conditioned frozen extractor (the paper's noisy-classifier design, here a U-Net's encoder)", () => {
  // weights randomized (mildly, so a central difference stays accurate): the fixture trained 3 steps, so its zero-initialized layers still hide the time input
  const unet = parseModel(readFileSync(join(dir, 'model.onnx')), 'torch-unet-tiny');
  const rng = new Rng(5);
  for (const [k, t] of unet.graph.initializers)
    if (t.dtype === 'float32' && t.data.length > 1)
      unet.graph.initializers.set(k, { ...t, data: (t.data as Float32Array).map((v) => v + 0.05 * rng.normal()) });
  const bytes = serializeModel(unet);
  // the middle block's output: the first input of the first skip concatenation of the up path
  const mid = unet.graph.nodes.find((n) => n.name === '/Concat_1')!.inputs[0]!;
  const arch = {
    kind: 'frozen-features' as const,
    featureOnnx: 'torch-unet-tiny/model.onnx',
    featureTensor: mid,
    hidden: 16,
    timeDim: 8,
    timeInput: { name: 't', encoding: { kind: 'ddpm-step' as const, steps: 1000 } },
  };

  it('maps LVP τ to the DDPM step round(τ·(T−1)), clipped', () => {
    expect([0, 0.0004, 0.5, 0.8, 1, 1.2, -0.1].map((t) => ddpmStepFromTau(t, 1000))).toEqual([0, 0, 500, 799, 999, 999, 0]);
  });

  it('feeds the extractor the step of τ: its features equal the extractor run alone at that step', async () => {
    const net = await buildFrozenFeatureNet(arch, bytes, [3, 64, 64], 2);
    net.model.graph.outputs.push({ name: `frozen/${mid}`, dtype: 'float32', shape: null });
    const x = Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.cos(i * 0.13));
    const taus = [0.05, 0.6];
    const whole = await createSession(serializeModel(net.model), 'net');
    const got = await whole.session.run({
      x: new ort.Tensor('float32', x, [2, 3, 64, 64]),
      t: new ort.Tensor('float32', Float32Array.from(taus), [2]),
    });
    const alone = await createSession(serializeModel(cutAt(unet, mid, 'unet')), 'alone');
    const want = await alone.session.run({
      x: new ort.Tensor('float32', x, [2, 3, 64, 64]),
      t: new ort.Tensor('int64', BigInt64Array.from(taus.map((t) => BigInt(ddpmStepFromTau(t, 1000)))), [2]),
    });
    const a = got[`frozen/${mid}`]!.data as Float32Array;
    const b = want[mid]!.data as Float32Array;
    expect(a.length).toBe(b.length);
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-5);
    // and time matters: another τ gives other features
    const other = await whole.session.run({
      x: new ort.Tensor('float32', x, [2, 3, 64, 64]),
      t: new ort.Tensor('float32', Float32Array.from([0.3, 0.9]), [2]),
    });
    expect(Math.max(...(other[`frozen/${mid}`]!.data as Float32Array).map((v, i) => Math.abs(v - a[i]!)))).toBeGreaterThan(1e-3);
    await whole.session.release();
    await alone.session.release();
  });

  it('its logit gradient wrt the image matches a central difference through the frozen encoder', async () => {
    const net = await buildFrozenFeatureNet(arch, bytes, [3, 64, 64], 2);
    const m = net.model;
    m.graph.nodes.forEach((n) => (n.outputs = n.outputs.map((o) => (o === 'logit' ? 'y' : o))));
    m.graph.outputs = [{ name: 'y', dtype: 'float32', shape: null }];
    const x = Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.29));
    const { fd, analytic } = await directionalCheck(
      m,
      { x: { dtype: 'float32', shape: [2, 3, 64, 64], data: x }, t: { dtype: 'float32', shape: [2], data: Float32Array.from([0.1, 0.5]) } },
      ['x'],
      1e-2,
    );
    // a fresh head gives a small logit slope; at h = 1e-2 float32 rounding and curvature stay ~1 %
    expect(Math.abs(analytic)).toBeGreaterThan(1e-5);
    expect(Math.abs(fd - analytic)).toBeLessThan(0.03 * Math.abs(analytic));
  });

  it('a two-input extractor without --feature-time is an error naming its inputs', async () => {
    await expect(buildFrozenFeatureNet({ ...arch, timeInput: undefined }, bytes, [3, 64, 64])).rejects.toThrow(
      /needs 2 inputs \(x, t\); it must take the image alone, or the image and a time input named by --feature-time/,
    );
    await expect(buildFrozenFeatureNet({ ...arch, timeInput: { ...arch.timeInput, name: 'sigma' } }, bytes, [3, 64, 64])).rejects.toThrow(
      /has no input "sigma" \(its inputs: x, t\)/,
    );
  });
});
