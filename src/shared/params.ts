/**
 * Translation parameters: one schema for the CLI, the studio, the server and the
 * parameters embedded in every output PNG.
 */
import { z } from 'zod';

export const SAMPLER_NAMES = ['euler', 'heun', 'ddim', 'ddpm', 'dpm++2m', 'dpm++3m', 'unipc', 'euler-a', 'dpm++2m-sde'] as const;

/** How the CLI, the studio and the docs name each sampler. */
export const SAMPLER_LABELS: Record<(typeof SAMPLER_NAMES)[number], string> = {
  euler: 'Euler',
  heun: 'Heun',
  ddim: 'DDIM',
  ddpm: 'DDPM',
  'dpm++2m': 'DPM-Solver++(2M)',
  'dpm++3m': 'DPM-Solver++(3M)',
  unipc: 'UniPC (bh2)',
  'euler-a': 'Euler ancestral (= DDPM)',
  'dpm++2m-sde': 'DPM-Solver++(2M) SDE',
};

export const TranslateParamsSchema = z
  .object({
    t0: z.number().gt(0, 't0 must be in (0, 1]').max(1, 't0 must be in (0, 1]').default(0.5),
    /**
     * Defaults (with spacing): stochastic sampling, which translation favours (dg-math §8) — the cheapest
     * setting within DDPM 100's seed-noise floor in realism (SWD) and faithfulness (L2 to the source) on the
     * bundled default, with DG and without: DPM-Solver++(2M) SDE on the Karras ladder, 8 steps = 8 network
     * evaluations (bench/sampler-sde-emoji, N = 32, t0 0.5, docs/benchmarks.md, 2026-12-04). The former
     * default, the ODE DPM-Solver++(2M) at 8 steps, lies outside that floor and is rougher (1.26 → 1.16×
     * Noto's roughness plain, 1.50 → 1.36× with DG at w = 32).
     */
    steps: z.number().int().min(1).max(1000).default(8),
    sampler: z.enum(SAMPLER_NAMES).default('dpm++2m-sde'),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1)
      .default(0),
    batchSize: z.number().int().min(1).max(256).default(4),
    /** DG weight w (w1 on Heun's first stage) */
    dgWeight: z.number().min(0).max(100).default(0),
    /**
     * DG weight on Heun's second stage; null: the same as dgWeight, so w = 1 is the full
     * correction of Theorem 1 on every sampler. The paper uses 0 here (one discriminator
     * call per step), which acts like about half the weight: it pairs that with w = 2.
     */
    dgWeight2: z.number().min(0).max(100).nullable().default(null),
    dgWindow: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.01, 1]),
    boosting: z
      .object({
        period: z.number().int().min(1),
        factor: z.number().min(1).default(2),
        churn: z.number().min(0).default(0),
      })
      .nullable()
      .default(null),
    eta: z.number().min(0).max(1).default(0),
    churn: z.number().min(0).default(0),
    spacing: z.enum(['karras', 'uniform', 'lambda']).default('karras'),
    /**
     * the ladder's floor (VE σ, dg-math §8): its last level before the final step to 0; null: the model's own
     * (its manifest's recommendedSigmaMin), else its schedule's smallest
     */
    sigmaMin: z.number().positive().max(100).nullable().default(null),
    /** the class for class-conditional models and for classifier guidance */
    classLabel: z.number().int().min(0).nullable().default(null),
    /** classifier-guidance weight w_CG (paper Eq. 6); 0: none */
    cgWeight: z.number().min(0).max(100).default(0),
    /**
     * how a source whose size or aspect is not the model's is brought to it: crop (cover, centre-crop; the
     * output is that square), pad (the whole image, white around it; the output cut back to the source's
     * aspect), stretch (resized whatever its aspect; the output resized back)
     */
    fit: z.enum(['crop', 'pad', 'stretch']).default('crop'),
    /** the result at the model's scale, or brought to the source's own size (Lanczos3: an upscale adds no detail) */
    outputSize: z.enum(['model', 'source']).default('model'),
    /** text-conditioned (latent, SD-family) models: the prompt, the negative prompt and the CFG scale (dg-math §11) */
    prompt: z.string().max(4000).default(''),
    negativePrompt: z.string().max(4000).default(''),
    cfgScale: z.number().min(0).max(30).default(7.5),
  })
  .refine((p) => p.dgWindow[0] <= p.dgWindow[1], { message: 'dgWindow must be [τmin, τmax] with τmin ≤ τmax', path: ['dgWindow'] });

export type TranslateParams = z.infer<typeof TranslateParamsSchema>;
export type TranslateParamsInput = z.input<typeof TranslateParamsSchema>;

/** A1111-style one-line summary for the PNG "parameters" text chunk. */
export function formatParametersLine(p: TranslateParams, extra: Record<string, string | number>): string {
  const fields: [string, string | number][] = [
    ['Steps', p.steps],
    ['Sampler', p.sampler],
    ['t0', p.t0],
    ['DG weight', p.dgWeight],
    ['DG weight 2', p.dgWeight2 ?? p.dgWeight],
    ['DG window', `${p.dgWindow[0]}-${p.dgWindow[1]}`],
    ['Seed', p.seed],
    ['Eta', p.eta],
    ['Churn', p.churn],
    ['Spacing', p.spacing],
    ...(p.sigmaMin !== null ? ([['Sigma min', p.sigmaMin]] as [string, number][]) : []),
    ...(p.classLabel !== null ? ([['Class', p.classLabel]] as [string, number][]) : []),
    ...(p.cgWeight > 0 ? ([['CG weight', p.cgWeight]] as [string, number][]) : []),
    ...(p.fit !== 'crop' ? ([['Fit', p.fit]] as [string, string][]) : []),
    ...(p.outputSize === 'source' ? ([['Resize', 'Lanczos3 to the source size']] as [string, string][]) : []),
    ...Object.entries(extra),
  ];
  return fields.map(([k, v]) => `${k}: ${v}`).join(', ');
}
