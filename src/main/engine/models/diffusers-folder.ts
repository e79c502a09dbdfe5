/**
 * A Stable Diffusion-family model folder in diffusers' ONNX layout (what Optimum, diffusers' converter, Olive
 * and Amuse/OnnxStack write): `model_index.json`, `unet/`, `vae_encoder/`, `vae_decoder/`, `text_encoder/`,
 * `tokenizer/`, `scheduler/scheduler_config.json`. Read and checked here — every part and every setting that
 * matters to SDEdit (dg-math §11) — with errors that name the file and what is wrong. Only the betas, the
 * prediction type, the timestep spacing and the offset of a scheduler matter: PNDM, DDIM, Euler, LMS and
 * DPM-Solver configs are all read as the same discrete VP schedule, sampled by the studio's own samplers.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../../../shared/errors.js';
import type { ScheduleSpec } from '../../../shared/manifest.js';
import { SAMPLER_NAMES } from '../../../shared/params.js';

/** The parts of a folder, each an ONNX file (and maybe its external weights) in its own subfolder. */
export const DIFFUSERS_PARTS = ['unet', 'vae_encoder', 'vae_decoder', 'text_encoder'] as const;
export type DiffusersPart = (typeof DIFFUSERS_PARTS)[number];

/** The scheduler settings SDEdit needs (diffusers' names; everything else in the file is ignored). */
export const SchedulerConfigSchema = z.object({
  _class_name: z.string().optional(),
  num_train_timesteps: z.number().int().min(2).default(1000),
  beta_start: z.number().positive().lt(1).default(0.0001),
  beta_end: z.number().positive().lt(1).default(0.02),
  beta_schedule: z.enum(['linear', 'scaled_linear']).default('linear'),
  trained_betas: z.null().optional(),
  prediction_type: z.enum(['epsilon', 'v_prediction']).default('epsilon'),
  steps_offset: z.number().int().min(0).default(0),
  timestep_spacing: z.enum(['leading', 'trailing', 'linspace']).default('leading'),
});
export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;

/**
 * What a model folder may suggest of itself in an optional `dg-studio.json` beside model_index.json: the
 * settings it was made for, used wherever the user gives none (CLI flags, the studio's fields on picking it).
 */
export const LatentDefaultsSchema = z
  .object({
    /** the name the studio lists it under (else the folder's) */
    name: z.string().min(1).max(200).optional(),
    /** SDEdit's t0 (img2img strength) that suits it */
    recommendedT0: z.number().gt(0).max(1).optional(),
    cfgScale: z.number().min(0).max(30).optional(),
    /** a distilled model's few steps and its sampler (SD-Turbo: 1–4 steps, euler, cfgScale 0) */
    steps: z.number().int().min(1).max(1000).optional(),
    sampler: z.enum(SAMPLER_NAMES).optional(),
    prompt: z.string().max(4000).optional(),
    negativePrompt: z.string().max(4000).optional(),
    /** the square size it was trained at (512 for SD 1.x, 768 for SD 2.x): a latent discriminator's --image-size */
    imageSize: z.number().int().min(8).max(4096).multipleOf(8).optional(),
  })
  .strict();
export type LatentDefaults = z.infer<typeof LatentDefaultsSchema>;

export const LATENT_DEFAULTS_FILE = 'dg-studio.json';

export interface DiffusersFolder {
  dir: string;
  /** the folder's own suggestions (dg-studio.json), empty without one */
  defaults: LatentDefaults;
  /** model_index.json's pipeline class (OnnxStableDiffusionPipeline, ORTStableDiffusionPipeline, …) */
  pipeline: string;
  /** each part's ONNX file */
  onnx: Record<DiffusersPart, string>;
  tokenizer: { vocab: string; merges: string };
  scheduler: SchedulerConfig;
  /** the discrete schedule the samplers walk (dg-math §11) */
  schedule: ScheduleSpec;
  /** z = s·E(x) (dg-math §11): the VAE's scaling_factor, 0.18215 when its config does not say */
  vaeScalingFactor: number;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${what} "${path}" is missing`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} "${path}" is not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** Folder names that say nothing of the model (…/tiny-sd-emoji/model): a model is named after the parent instead. */
const GENERIC_FOLDER_NAMES = new Set(['model', 'models', 'onnx', 'unet-onnx']);

/** What a model folder is called (lists, PNG parameters, the gallery): its dg-studio.json name, else its folder's. */
export function latentModelName(dir: string, defaults: LatentDefaults = {}): string {
  const folder = resolve(dir);
  return defaults.name ?? (GENERIC_FOLDER_NAMES.has(basename(folder).toLowerCase()) ? basename(dirname(folder)) : basename(folder));
}

/** Is this a diffusers-layout model folder (it has a model_index.json)? */
export function isDiffusersFolder(dir: string): boolean {
  try {
    return statSync(dir).isDirectory() && existsSync(join(dir, 'model_index.json'));
  } catch {
    return false;
  }
}

/** Read and check a diffusers ONNX folder; every problem names its file. */
export function readDiffusersFolder(dir: string): DiffusersFolder {
  const index = readJson(join(dir, 'model_index.json'), 'the pipeline index') as Record<string, unknown>;
  const pipeline = typeof index['_class_name'] === 'string' ? index['_class_name'] : 'unknown pipeline';
  if (/XL|Flux|SD3|StableDiffusion3|Cascade|Kandinsky|Video/i.test(pipeline))
    throw new Error(
      `"${join(dir, 'model_index.json')}" is a ${pipeline}: only Stable Diffusion 1.x/2.x-family pipelines (one text encoder, a 4-channel VAE) are supported`,
    );
  const onnx = {} as Record<DiffusersPart, string>;
  const missing: string[] = [];
  for (const part of DIFFUSERS_PARTS) {
    const file = join(dir, part, 'model.onnx');
    if (existsSync(file)) onnx[part] = file;
    else missing.push(`${part}/model.onnx`);
  }
  const tokenizer = { vocab: join(dir, 'tokenizer', 'vocab.json'), merges: join(dir, 'tokenizer', 'merges.txt') };
  for (const f of [tokenizer.vocab, tokenizer.merges]) if (!existsSync(f)) missing.push(f.slice(dir.length + 1));
  const schedulerPath = join(dir, 'scheduler', 'scheduler_config.json');
  if (!existsSync(schedulerPath)) missing.push('scheduler/scheduler_config.json');
  if (missing.length) throw new Error(`the model folder "${dir}" lacks ${missing.join(', ')} (diffusers' ONNX layout)`);

  const raw = readJson(schedulerPath, 'the scheduler config');
  const parsed = SchedulerConfigSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`the scheduler config "${schedulerPath}": ${describeIssues(parsed.error, raw)}`);
  const scheduler = parsed.data;
  const schedule: ScheduleSpec =
    scheduler.beta_schedule === 'scaled_linear'
      ? { kind: 'ddpm-scaled-linear', steps: scheduler.num_train_timesteps, betaStart: scheduler.beta_start, betaEnd: scheduler.beta_end }
      : { kind: 'ddpm-linear', steps: scheduler.num_train_timesteps, betaStart: scheduler.beta_start, betaEnd: scheduler.beta_end };

  let vaeScalingFactor = 0.18215;
  for (const part of ['vae_decoder', 'vae_encoder']) {
    const config = join(dir, part, 'config.json');
    if (!existsSync(config)) continue;
    const c = readJson(config, 'the VAE config') as { scaling_factor?: unknown };
    if (c.scaling_factor === undefined) continue;
    if (typeof c.scaling_factor !== 'number' || !(c.scaling_factor > 0))
      throw new Error(`the VAE config "${config}": scaling_factor must be a positive number (got ${JSON.stringify(c.scaling_factor)})`);
    vaeScalingFactor = c.scaling_factor;
    break;
  }
  return { dir, defaults: readLatentDefaults(dir), pipeline, onnx, tokenizer, scheduler, schedule, vaeScalingFactor };
}

/** The folder's dg-studio.json, checked (an unknown key or a wrong value names the file); {} without one. */
function readLatentDefaults(dir: string): LatentDefaults {
  const path = join(dir, LATENT_DEFAULTS_FILE);
  if (!existsSync(path)) return {};
  const raw = readJson(path, "the folder's settings");
  const parsed = LatentDefaultsSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`the folder's settings "${path}": ${describeIssues(parsed.error, raw)}`);
  return parsed.data;
}

/** numpy's round (half to even), which diffusers' timestep ladders use */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The inference timesteps of a diffusers scheduler for `steps` steps, highest first (dg-math §11):
 * `leading` i·⌊T/N⌋ + offset, `trailing` round(T − i·T/N) − 1, `linspace` round(linspace(0, T−1, N)).
 */
export function diffusersTimesteps(c: SchedulerConfig, steps: number): number[] {
  const T = c.num_train_timesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new Error(`steps must be a whole number in [1, ${T}] (got ${steps})`);
  const ladder =
    c.timestep_spacing === 'leading'
      ? Array.from({ length: steps }, (_, i) => roundHalfEven(i * Math.floor(T / steps)) + c.steps_offset).reverse()
      : c.timestep_spacing === 'trailing'
        ? Array.from({ length: steps }, (_, i) => roundHalfEven(T - (i * T) / steps) - 1)
        : Array.from({ length: steps }, (_, i) => roundHalfEven(steps === 1 ? 0 : (i * (T - 1)) / (steps - 1))).reverse();
  return ladder;
}

/**
 * img2img at a strength (diffusers' `get_timesteps`; = SDEdit's t0, dg-math §11): the last
 * `min(⌊N·strength⌋, N)` timesteps of the N-step ladder; the source is noised to the first of them.
 */
export function img2imgTimesteps(c: SchedulerConfig, steps: number, strength: number): number[] {
  if (!(strength > 0 && strength <= 1)) throw new Error(`strength must be in (0, 1] (got ${strength})`);
  const init = Math.min(Math.floor(steps * strength), steps);
  return diffusersTimesteps(c, steps).slice(Math.max(steps - init, 0));
}
