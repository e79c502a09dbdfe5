/**
 * Stable Diffusion-family folders (issue 27, dg-math §11): the schedule and timestep ladders against
 * diffusers' definitions and SD's well-known constants, and every way a folder can be wrong, in words.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  diffusersTimesteps,
  img2imgTimesteps,
  readDiffusersFolder,
  roundHalfEven,
  SchedulerConfigSchema,
} from '../../src/main/engine/models/diffusers-folder.js';
import { alphaBarsFromBetas, scaledLinearBetas } from '../../src/main/engine/models/schedules.js';
import { modelSchedule } from '../../src/main/engine/sampling/model-schedule.js';
import { tempDir } from '../helpers/tmp.js';

/** SD 1.5's scheduler_config.json (PNDM, as shipped) */
const SD15 = {
  _class_name: 'PNDMScheduler',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};

describe('SD schedules (dg-math §11)', () => {
  it('scaled_linear: √β evenly spaced from √β_start to √β_end; SD 1.5 ends at ᾱ = 0.004660, σ from 0.02917 to 14.6146', () => {
    const betas = scaledLinearBetas(1000, 0.00085, 0.012);
    expect(betas[0]).toBeCloseTo(0.00085, 12);
    expect(betas[999]).toBeCloseTo(0.012, 12);
    const roots = Array.from(betas, Math.sqrt);
    for (let j = 1; j < 1000; j++) expect(roots[j]! - roots[j - 1]!).toBeCloseTo((Math.sqrt(0.012) - Math.sqrt(0.00085)) / 999, 12);
    expect(alphaBarsFromBetas(betas)[999]).toBeCloseTo(0.004660098513, 9);
    const s = modelSchedule({ kind: 'ddpm-scaled-linear', steps: 1000, betaStart: 0.00085, betaEnd: 0.012 });
    // the values k-diffusion and A1111 print for SD 1.x
    expect(s.sigmaMax).toBeCloseTo(14.6146, 3);
    expect(s.sigmaMin).toBeCloseTo(0.02917, 4);
  });

  it('round half to even, as numpy rounds', () => {
    expect([0.5, 1.5, 2.5, 937.5, 812.5, -0.5, 3.2].map(roundHalfEven)).toEqual([0, 2, 2, 938, 812, -0, 3]);
  });

  it('leading spacing with SD 1.5’s offset: 50 steps are 981, 961, …, 1; strength 0.75 starts at 721 with 37 steps', () => {
    const c = SchedulerConfigSchema.parse(SD15);
    const t = diffusersTimesteps(c, 50);
    expect(t).toHaveLength(50);
    expect([t[0], t[1], t.at(-1)]).toEqual([981, 961, 1]);
    const i2i = img2imgTimesteps(c, 50, 0.75);
    expect([i2i.length, i2i[0], i2i.at(-1)]).toEqual([37, 721, 1]);
    // strength 1 is the whole ladder; a strength below one step is none of it
    expect(img2imgTimesteps(c, 50, 1)).toEqual(t);
    expect(img2imgTimesteps(c, 50, 0.01)).toEqual([]);
  });

  it('trailing (SD-Turbo): 1 step is 999, 4 steps 999/749/499/249, 16 steps round half to even', () => {
    const c = SchedulerConfigSchema.parse({ ...SD15, timestep_spacing: 'trailing', steps_offset: 0 });
    expect(diffusersTimesteps(c, 1)).toEqual([999]);
    expect(diffusersTimesteps(c, 4)).toEqual([999, 749, 499, 249]);
    expect(diffusersTimesteps(c, 16)).toEqual([999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61]);
  });

  it('linspace: 4 steps are 999, 666, 333, 0', () => {
    const c = SchedulerConfigSchema.parse({ ...SD15, timestep_spacing: 'linspace' });
    expect(diffusersTimesteps(c, 4)).toEqual([999, 666, 333, 0]);
  });
});

describe('reading a diffusers ONNX folder', async () => {
  const root = await tempDir();
  /** a folder with every part (empty ONNX files: only the layout is read here) and the given configs */
  const folder = async (name: string, opts: { scheduler?: unknown; index?: unknown; leave?: string[]; vae?: unknown } = {}) => {
    const dir = join(root, name);
    const files: Record<string, string> = {
      'model_index.json': JSON.stringify(opts.index ?? { _class_name: 'OnnxStableDiffusionPipeline', _diffusers_version: '0.30.0' }),
      'unet/model.onnx': '',
      'vae_encoder/model.onnx': '',
      'vae_decoder/model.onnx': '',
      'text_encoder/model.onnx': '',
      'tokenizer/vocab.json': '{}',
      'tokenizer/merges.txt': '#version: 0.2\n',
      'scheduler/scheduler_config.json': JSON.stringify(opts.scheduler ?? SD15),
      ...(opts.vae ? { 'vae_decoder/config.json': JSON.stringify(opts.vae) } : {}),
    };
    for (const [rel, text] of Object.entries(files)) {
      if (opts.leave?.includes(rel)) continue;
      await mkdir(join(dir, rel, '..'), { recursive: true });
      await writeFile(join(dir, rel), text);
    }
    return dir;
  };

  it('reads SD 1.5’s layout: scaled-linear schedule, ε prediction, the default scaling factor', async () => {
    const f = readDiffusersFolder(await folder('sd15'));
    expect(f.schedule).toEqual({ kind: 'ddpm-scaled-linear', steps: 1000, betaStart: 0.00085, betaEnd: 0.012 });
    expect(f.scheduler.prediction_type).toBe('epsilon');
    expect(f.vaeScalingFactor).toBe(0.18215);
    expect(f.onnx.unet).toBe(join(root, 'sd15', 'unet', 'model.onnx'));
  });

  it('reads v-prediction (SD 2.x 768) and a VAE config’s scaling factor', async () => {
    const f = readDiffusersFolder(
      await folder('sd21', { scheduler: { ...SD15, prediction_type: 'v_prediction' }, vae: { scaling_factor: 0.13025 } }),
    );
    expect(f.scheduler.prediction_type).toBe('v_prediction');
    expect(f.vaeScalingFactor).toBe(0.13025);
  });

  it('names every missing part at once', async () => {
    const dir = await folder('partial', { leave: ['vae_encoder/model.onnx', 'tokenizer/merges.txt'] });
    expect(() => readDiffusersFolder(dir)).toThrow(/lacks vae_encoder\/model\.onnx, tokenizer\/merges\.txt/);
  });

  it('refuses what it cannot run, naming the file: another beta schedule, another pipeline family, broken JSON, a bad scaling factor', async () => {
    const cosine = await folder('cosine', { scheduler: { ...SD15, beta_schedule: 'squaredcos_cap_v2' } });
    expect(() => readDiffusersFolder(cosine)).toThrow(/scheduler_config\.json.*beta_schedule/s);
    const xl = await folder('xl', { index: { _class_name: 'ORTStableDiffusionXLPipeline' } });
    expect(() => readDiffusersFolder(xl)).toThrow(/is a ORTStableDiffusionXLPipeline: only Stable Diffusion 1\.x\/2\.x/);
    const broken = await folder('broken');
    await writeFile(join(broken, 'scheduler', 'scheduler_config.json'), '{"beta_start": ');
    expect(() => readDiffusersFolder(broken)).toThrow(/scheduler config ".*scheduler_config\.json" is not valid JSON/);
    const vae = await folder('vae', { vae: { scaling_factor: -1 } });
    expect(() => readDiffusersFolder(vae)).toThrow(/config\.json": scaling_factor must be a positive number/);
  });
});
