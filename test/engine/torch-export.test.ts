import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseModel } from '../../src/main/engine/onnx/ir.js';
import { Rng } from '../../src/main/engine/rng.js';
import { loadScoreModel } from '../../src/main/engine/score-model.js';
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
