/**
 * Latent SDEdit with text conditioning (issue 27, dg-math §11) on the tiny random-weight SD fixtures: CFG against
 * its closed form, the VAE's posterior mean, and whole translations that are reproducible by seed and stay near
 * the source at a small t0.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TranslateParamsSchema } from '../../src/shared/params.js';
import { loadLatentModel, type LatentModel } from '../../src/main/engine/models/latent-model.js';
import { ort } from '../../src/main/engine/onnx/session.js';
import {
  cfgNetwork,
  decodeLatents,
  encodeLatents,
  textStates,
  translateLatentBatch,
} from '../../src/main/engine/sampling/latent-translate.js';
import { Rng } from '../../src/main/engine/rng.js';
import { loadClipTokenizer } from '../../src/main/engine/text/clip-tokenizer.js';
import { fromHalfBits, toHalfBits } from '../../src/main/engine/onnx/float16.js';
import { float16Folder } from '../helpers/float16-io.js';
import { tempDir } from '../helpers/tmp.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tiny-sd');
const image = (seed: number) => {
  const r = new Rng(seed);
  return { data: Float32Array.from({ length: 3 * 64 * 64 }, () => Math.tanh(r.normal())), shape: [1, 3, 64, 64] };
};
const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('latent SDEdit', () => {
  let diffusers: LatentModel;
  let optimum: LatentModel;
  const tokenizer = loadClipTokenizer(join(fixtures, 'diffusers', 'tokenizer'));
  beforeAll(async () => {
    [diffusers, optimum] = await Promise.all([loadLatentModel(join(fixtures, 'diffusers')), loadLatentModel(join(fixtures, 'optimum'))]);
  });
  afterAll(async () => {
    await diffusers?.dispose();
    await optimum?.dispose();
  });

  it('classifier-free guidance is ε_u + g·(ε_c − ε_u), from one batched UNet call', async () => {
    const { states } = await textStates(diffusers, tokenizer, ['a photo', '']);
    const row = states.data.length / 2;
    const cond = { data: states.data.slice(0, row), shape: [1, 77, 32] };
    const uncond = { data: states.data.slice(row), shape: [1, 77, 32] };
    const r = new Rng(3);
    const x = { data: Float32Array.from({ length: 2 * 4 * 8 * 8 }, () => r.normal()), shape: [2, 4, 8, 8] };
    const t = Float64Array.from([400, 400]);
    const [c, u, guided] = await Promise.all([
      cfgNetwork(diffusers, cond, uncond, 1)(x, t),
      cfgNetwork(diffusers, uncond, cond, 1)(x, t),
      cfgNetwork(diffusers, cond, uncond, 3)(x, t),
    ]);
    const expected = u.data.map((v, i) => v + 3 * (c.data[i]! - v));
    expect(maxAbs(guided.data, expected)).toBeLessThan(1e-5);
    expect(maxAbs(c.data, u.data)).toBeGreaterThan(1e-3); // the prompt matters
  });

  it('encodes to s·(posterior mean): latent_sample as given, latent_parameters’ first half', async () => {
    const x = image(1);
    const z = await encodeLatents(optimum, x);
    expect(z.shape).toEqual([1, 4, 8, 8]);
    const raw = await optimum.sessions.vaeEncoder.session.run({ sample: new ort.Tensor('float32', x.data, x.shape) });
    const params = raw['latent_parameters']!.data as Float32Array;
    expect(
      maxAbs(
        z.data,
        params.slice(0, 4 * 64).map((v) => v * 0.18215),
      ),
    ).toBeLessThan(1e-7);
    expect((await decodeLatents(optimum, z)).shape).toEqual([1, 3, 64, 64]);
  });

  it('a translation is reproducible by seed, differs with it, and stays near the source’s reconstruction at a small t0', async () => {
    const x = image(2);
    const text = { prompt: 'a photo', negativePrompt: '', cfgScale: 5 };
    const params = TranslateParamsSchema.parse({ t0: 0.5, steps: 4, sampler: 'dpm++2m-sde' });
    const [a, b, other] = await Promise.all(
      [7, 7, 8].map((seed) => translateLatentBatch(diffusers, tokenizer, x, params, text, { seeds: [seed] })),
    );
    expect(a!.images.shape).toEqual([1, 3, 64, 64]);
    expect(a!.images.data.every(Number.isFinite)).toBe(true);
    expect(maxAbs(a!.images.data, b!.images.data)).toBe(0);
    expect(maxAbs(a!.latents.data, other!.latents.data)).toBeGreaterThan(1e-3);
    // t0 0.02: a little noise on the latents, then denoised: the latents stay near the source's (in latent space:
    // the random-weight decoder magnifies any latent change ~5.5×, 1/s)
    const small = await translateLatentBatch(diffusers, tokenizer, x, TranslateParamsSchema.parse({ t0: 0.02, steps: 2 }), text, {
      seeds: [1],
    });
    const z = await encodeLatents(diffusers, x);
    expect(maxAbs(small.latents.data, z.data)).toBeLessThan(maxAbs(a!.latents.data, z.data) / 4);
  });

  it('runs the Optimum variant (int64 ids and timesteps), and says when a prompt was cut', async () => {
    const long = Array.from({ length: 90 }, () => 'art').join(' ');
    const r = await translateLatentBatch(
      optimum,
      tokenizer,
      image(4),
      TranslateParamsSchema.parse({ t0: 0.4, steps: 3 }),
      { prompt: long, negativePrompt: '', cfgScale: 1 },
      { seeds: [0] },
    );
    expect(r.images.data.every(Number.isFinite)).toBe(true);
    expect(r.warnings.join(' ')).toMatch(/longer than 75 tokens and was cut/);
  });

  it('float16 values: exact where representable, rounded to nearest even, ±Infinity beyond 65504', () => {
    const v = Float32Array.from([0, -0, 1, -2.5, 65504, 1e-8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, Number.NaN]);
    const back = fromHalfBits(toHalfBits(v));
    expect(Array.from(back.slice(0, 5))).toEqual([0, -0, 1, -2.5, 65504]);
    expect(back[5]).toBe(0); // below the smallest subnormal (≈ 6e-8)
    expect(back[6]).toBe(1); // a tie: to the even neighbour, 1
    expect(back[7]).toBe(1 + 2 ** -9); // a tie: to the even neighbour, 1 + 2⁻⁹
    expect(back[8]).toBe(Infinity);
    expect(Number.isNaN(back[9])).toBe(true);
  });

  it('a half-precision export (float16 inputs, outputs and timestep) translates like its float32 original, to float16 rounding', async () => {
    const half = await loadLatentModel(await float16Folder(join(fixtures, 'diffusers'), join(await tempDir(), 'fp16')));
    try {
      expect(half.io.sampleType).toBe('float16');
      expect(half.io.timestep.type).toBe('float16');
      const x = image(5);
      const text = { prompt: 'a photo', negativePrompt: '', cfgScale: 3 };
      const params = TranslateParamsSchema.parse({ t0: 0.4, steps: 3, sampler: 'euler' });
      const [a, b] = await Promise.all([diffusers, half].map((m) => translateLatentBatch(m, tokenizer, x, params, text, { seeds: [3] })));
      expect(b!.images.data.every(Number.isFinite)).toBe(true);
      // float16 keeps 11 significant bits: each boundary crossing rounds by ≤ 2⁻¹¹ relative, timesteps ≤ 999 by ≤ 0.25 (0.4 % measured)
      const range = maxAbs(a!.images.data, new Float32Array(a!.images.data.length));
      expect(maxAbs(a!.images.data, b!.images.data)).toBeLessThan(0.01 * range);
      expect(maxAbs(a!.images.data, b!.images.data)).toBeGreaterThan(0); // the float16 path really ran
    } finally {
      await half.dispose();
    }
  });
});
