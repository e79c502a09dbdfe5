/**
 * SD-family folders opened with their sessions (issue 27): the I/O variants of real exporters are read from
 * the files (tiny random-weight fixtures by tools/make-sd-fixture.py), and parts from different models are
 * refused in words naming the files.
 */
import { copyFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLatentModel } from '../../src/main/engine/models/latent-model.js';
import { tempDir } from '../helpers/tmp.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tiny-sd');

describe('opening a diffusers ONNX folder', async () => {
  const dir = await tempDir();
  /** a copy of the diffusers-style fixture with one part's model.onnx replaced by another file */
  const withPart = async (name: string, part: string, from: string) => {
    const to = join(dir, name);
    await cp(join(fixtures, 'diffusers'), to, { recursive: true });
    await copyFile(from, join(to, part, 'model.onnx'));
    return to;
  };

  it("diffusers' converter: int32 ids, float32 [B] timestep, latent_sample", async () => {
    const m = await loadLatentModel(join(fixtures, 'diffusers'));
    try {
      expect(m.io).toEqual({
        inputIds: 'int32',
        timestep: { type: 'float32', shape: 'batch' },
        sampleType: 'float32',
        textHidden: 32,
        latentChannels: 4,
        encoderOutput: 'latent_sample',
      });
      expect(m.folder.schedule.kind).toBe('ddpm-scaled-linear');
    } finally {
      await m.dispose();
    }
  });

  it('Optimum: int64 ids, int64 [B] timestep, latent_parameters (mean and log-variance: 8 channels for 4 latents)', async () => {
    const m = await loadLatentModel(join(fixtures, 'optimum'));
    try {
      expect(m.io).toMatchObject({
        inputIds: 'int64',
        timestep: { type: 'int64', shape: 'batch' },
        encoderOutput: 'latent_parameters',
        latentChannels: 4,
      });
    } finally {
      await m.dispose();
    }
  });

  it('a text encoder of another width than the UNet takes is refused, naming both files', async () => {
    const f = await withPart('h48', 'text_encoder', join(fixtures, 'parts', 'text_encoder_h48', 'model.onnx'));
    await expect(loadLatentModel(f)).rejects.toThrow(
      /text_encoder\/model\.onnx" gives states of width 48, but the UNet ".*unet\/model\.onnx" takes encoder_hidden_states of width 32/,
    );
  });

  it('a part in the wrong place is refused in words', async () => {
    const decoderAsEncoder = await withPart('swapped', 'vae_encoder', join(fixtures, 'diffusers', 'vae_decoder', 'model.onnx'));
    await expect(loadLatentModel(decoderAsEncoder)).rejects.toThrow(
      /vae_encoder\/model\.onnx" is not a VAE encoder: it has no output "latent_sample" or "latent_parameters"/,
    );
    const textAsUnet = await withPart('text-unet', 'unet', join(fixtures, 'diffusers', 'text_encoder', 'model.onnx'));
    await expect(loadLatentModel(textAsUnet)).rejects.toThrow(/unet\/model\.onnx" has no input named "sample"; its inputs are: input_ids/);
  });
});
