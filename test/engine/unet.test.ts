import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildUNet, DEFAULT_UNET_ARCH, unetParameterCount, withUNetWeights, type UNetArch } from '../../src/main/engine/nn/unet.js';
import { serializeModel } from '../../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { decodeSafetensors } from '../../src/main/engine/io/safetensors.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'torch-unet-weights');

function archOf(meta: Record<string, string>): UNetArch {
  const a = JSON.parse(meta['arch']!) as { ch: number; mult: number[]; attn: number[]; groups: number; patch: number; res: number };
  return { channels: a.ch, mult: a.mult, attn: a.attn, groups: a.groups, patch: a.patch, resolution: a.res, imageChannels: 3 };
}

describe('the app U-Net is tools/train-score-model.py U-Net', () => {
  for (const name of ['plain', 'patch2']) {
    it(`${name}: same parameter names and order as the PyTorch state_dict, and the same output on the same weights`, async () => {
      const file = decodeSafetensors(readFileSync(join(fixtures, `${name}.safetensors`)), name);
      const built = buildUNet(archOf(file.metadata));
      expect(built.params).toEqual(JSON.parse(file.metadata['order']!));
      const model = withUNetWeights(built, (p) => file.tensors.get(`model.${p}`)?.data, name);
      const s = await createSession(serializeModel(model), name);
      const x = file.tensors.get('x')!;
      const t = (JSON.parse(file.metadata['t']!) as number[]).map(BigInt);
      const out = await s.session.run({
        x: new ort.Tensor('float32', x.data, x.shape),
        t: new ort.Tensor('int64', BigInt64Array.from(t), [t.length]),
      });
      const got = out['out']!.data as Float32Array;
      const want = file.tensors.get('out')!.data;
      let maxErr = 0;
      let maxAbs = 0;
      want.forEach((v, i) => {
        maxErr = Math.max(maxErr, Math.abs(v - got[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(v));
      });
      // float32 through ~40 layers in two libraries: agreement to ~1e-5 of the output's scale
      expect(maxAbs).toBeGreaterThan(0.1);
      expect(maxErr).toBeLessThan(1e-4 * Math.max(1, maxAbs));
      await s.session.release();
    });
  }

  it('the default width-32 architecture has the 2.33 M parameters of the PyTorch one', () => {
    expect(unetParameterCount(buildUNet(DEFAULT_UNET_ARCH))).toBe(2_329_603);
  });

  it('refuses an architecture that cannot be built, saying why', () => {
    expect(() => buildUNet({ ...DEFAULT_UNET_ARCH, channels: 30 })).toThrow(/divisible by the GroupNorm groups/);
    expect(() => buildUNet({ ...DEFAULT_UNET_ARCH, resolution: 40, mult: [1, 2, 2, 2, 2] })).toThrow(/cannot be halved/);
  });
});
