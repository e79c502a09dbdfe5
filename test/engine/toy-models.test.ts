import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadScoreModel } from '../../src/main/engine/models/score-model.js';
import { alphaFromSigmaVe } from '../../src/main/engine/models/schedules.js';
import { diffusedLogDensityAndScore, writeToyScoreModel, type ToyVariant } from '../../src/main/engine/models/toy-mixture.js';
import { tempDir } from '../helpers/tmp.js';
import { P } from '../helpers/toy.js';

const variants: ToyVariant[] = [
  { kind: 'lvp-eps' },
  { kind: 'lvp-x0' },
  { kind: 'lvp-v' },
  { kind: 'ddpm-eps-step', steps: 1000 },
  { kind: 'edm-denoiser-sigma' },
  { kind: 'edm-denoiser-cnoise' },
];

describe('toy score models as ONNX graphs, through the manifest adapter (dg-math §2, §7)', async () => {
  const dir = await tempDir();
  for (const variant of variants) {
    it(`${variant.kind}: the canonical denoiser equals the closed-form E[x0|x]`, async () => {
      const manifest = await writeToyScoreModel(join(dir, variant.kind), P, variant);
      const model = await loadScoreModel(manifest);
      const denoise = model.denoiser();
      // points at the schedule's own levels (discrete models: exactly on steps)
      const sigmas = Float64Array.from([0.05, 0.3, 0.5, 0.8].map((t) => model.schedule.sigmaAt(t)));
      const x = { data: Float32Array.from([0.3, -0.2, -1.4, 0.9, 2.5, -3, 10, 4]), shape: [4, 2] };
      const xVe = { data: x.data.map((v, i) => v / alphaFromSigmaVe(sigmas[i >> 1]!)), shape: x.shape };
      const d = await denoise(xVe, sigmas);
      for (let n = 0; n < 4; n++) {
        const s = sigmas[n]!;
        // closed form in VE coordinates: α = 1, σ = σ_ve; D = x + σ²·∇log p
        const xn = xVe.data.subarray(2 * n, 2 * n + 2);
        const { score } = diffusedLogDensityAndScore(P, xn, 1, s);
        for (let k = 0; k < 2; k++) {
          const expected = xn[k]! + s * s * score[k]!;
          expect(Math.abs(d.data[2 * n + k]! - expected)).toBeLessThan(2e-4 * (1 + Math.abs(expected) + s));
        }
      }
      await model.dispose();
    });
  }

  it('an unavailable execution provider falls back to CPU and says why', async () => {
    const manifest = await writeToyScoreModel(join(dir, 'ep'), P, { kind: 'lvp-eps' });
    const warnings: string[] = [];
    const model = await loadScoreModel(manifest, { executionProvider: 'cuda', onWarning: (m) => warnings.push(m) });
    expect(model.session.provider).toBe('cpu');
    expect(warnings[0]).toMatch(/execution provider "cuda" is not available .*running on CPU instead/);
    await model.dispose();
  });

  it('a manifest with a wrong input name is an error naming the file and listing the real inputs', async () => {
    const manifest = await writeToyScoreModel(join(dir, 'wrong-name'), P, { kind: 'lvp-eps' }, { extra: { io: { x: 'image' } } });
    await expect(loadScoreModel(manifest)).rejects.toThrow(
      /wrong-name\/manifest\.json": io\.x is "image", but the ONNX file has no input of that name; its inputs are "x", "t" — set io\.x/,
    );
  });

  it('a manifest whose dataShape disagrees with the graph is an error saying both shapes', async () => {
    const manifest = await writeToyScoreModel(join(dir, 'wrong-shape'), P, { kind: 'lvp-eps' }, { extra: { dataShape: [3] } });
    await expect(loadScoreModel(manifest)).rejects.toThrow(/shape \[N, 2\].*dataShape is \[3\]/);
  });

  it('an invalid manifest lists every problem with its field', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, JSON.stringify({ format: 'dg-studio/score-model@1', name: 'x', onnx: 'm.onnx', prediction: 'noise' }));
    await expect(loadScoreModel(path)).rejects.toThrow(/invalid manifest ".*bad.json":[\s\S]*prediction[\s\S]*schedule/);
  });

  it('a missing ONNX file is named', async () => {
    const manifest = await writeToyScoreModel(join(dir, 'missing'), P, { kind: 'lvp-eps' }, { extra: { onnx: 'nope.onnx' } });
    await expect(loadScoreModel(manifest)).rejects.toThrow(/names ONNX file "nope.onnx", which does not exist/);
  });

  it('a model that returns NaN is stopped with the level and item', async () => {
    // VE denoiser fed c_noise = ¼ln σ of σ = 0 → exp(-inf)=0 → 0/0 = NaN in the graph
    const manifest = await writeToyScoreModel(join(dir, 'nan'), P, { kind: 'edm-denoiser-cnoise' });
    const model = await loadScoreModel(manifest);
    await expect(model.denoiser()({ data: new Float32Array([0, 0]), shape: [1, 2] }, Float64Array.from([0]))).rejects.toThrow(
      /returned NaN at σ=0\.000 \(batch item 0\)/,
    );
  });
});
