/**
 * What the renderer sends (part of the one contract, shared/api.ts): each request's schema, validated by the
 * back end before it acts, and the few result shapes that belong to one request.
 */
import { z } from 'zod';
import { TranslateParamsSchema } from './params.js';

const id = z.string().regex(/^[0-9a-f]{16,64}$/, 'not a source id');
/** a model entry id (registry) */
export const EntryIdSchema = z.string().min(1).max(200);

export const AddSourcesSchema = z.object({
  files: z
    .array(z.object({ name: z.string().min(1).max(255), data: z.instanceof(Uint8Array) }))
    .min(1)
    .max(500),
});

export const TranslateRequestSchema = z.object({
  sources: z.array(id).min(1).max(10_000),
  params: TranslateParamsSchema,
  model: EntryIdSchema.nullable().default(null),
  discriminator: EntryIdSchema.nullable().default(null),
  /** classifier guidance (params.cgWeight > 0, toward params.classLabel): an imported classifier */
  classifier: EntryIdSchema.nullable().default(null),
});
export type TranslateRequest = z.input<typeof TranslateRequestSchema>;

export const GalleryQuerySchema = z.object({
  model: z.string().max(200).optional(),
  t0Min: z.number().optional(),
  t0Max: z.number().optional(),
  dgWeight: z.number().optional(),
  tag: z.string().max(100).optional(),
  text: z.string().max(200).optional(),
  favourite: z.boolean().optional(),
  includeErrors: z.boolean().optional(),
  limit: z.number().int().min(1).max(500).optional(),
  after: z.object({ createdAt: z.string(), id: z.number().int() }).optional(),
});

export const GalleryUpdateSchema = z.object({
  favourite: z.boolean().optional(),
  note: z.string().max(10_000).optional(),
  addTag: z.string().min(1).max(100).optional(),
  removeTag: z.string().min(1).max(100).optional(),
});

export const SweepRequestSchema = z.object({
  sources: z.array(id).min(1).max(1000),
  reference: z.array(id).min(2).max(5000),
  t0s: z.array(z.number().gt(0).max(1)).min(1).max(12),
  weights: z.array(z.number().min(0).max(100)).min(1).max(12),
  params: TranslateParamsSchema,
  model: EntryIdSchema.nullable().default(null),
  discriminator: EntryIdSchema.nullable().default(null),
});

export const PathsRequestSchema = z.object({
  sources: z.array(id).min(1).max(1000),
  reference: z.array(id).min(1).max(5000),
  t0: z.number().gt(0).max(1),
  weight: z.number().min(0).max(100),
  params: TranslateParamsSchema,
  model: EntryIdSchema.nullable().default(null),
  discriminator: EntryIdSchema.nullable().default(null),
});

/** A name that becomes a folder in the data folder: no separators, no ".", "..", or hidden names. */
const folderName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\w .-]+$/, 'letters, digits, spaces, dots and dashes only')
  .refine((n) => !n.startsWith('.') && n.trim() === n, 'a name may not start with a dot or a space, or end with a space');

/** Train a target score model (a U-Net exported as an ε network) from target-domain images, in the app's trainer. */
export const TrainScoreModelRequestSchema = z.object({
  targets: z.array(id).min(2).max(100_000),
  name: folderName,
  steps: z.number().int().min(1).max(10_000_000),
  batchSize: z.number().int().min(1).max(512).default(32),
  channels: z.number().int().min(4).max(256).default(32),
  patch: z.union([z.literal(1), z.literal(2)]).default(1),
  tMax: z.number().gt(0).max(1).default(1),
  /** what the U-Net learns: ε (the DDPM simple loss) or EDM's preconditioned F with its loss (dg-math §9) */
  precond: z.enum(['eps', 'edm']).default('eps'),
  /** image side; targets of other sizes are resized and centre-cropped */
  resolution: z.union([z.literal(32), z.literal(64), z.literal(128)]).default(64),
  /** source images whose SDEdit translations the preview shows (up to two are used) */
  previewSources: z.array(id).max(8).default([]),
});

/** A latent discriminator's data: images read at one square size, fakes translated with this text and CFG (issue 27). */
export const LatentTrainingSchema = z.object({
  imageSize: z
    .number()
    .int()
    .min(64)
    .max(1024)
    .refine((v) => v % 8 === 0, 'must be a multiple of 8')
    .default(512),
  prompt: z.string().max(2000).default(''),
  negativePrompt: z.string().max(2000).default(''),
  cfgScale: z.number().min(0).max(30).default(1),
});

export const TrainRequestSchema = z
  .object({
    sources: z.array(id).min(2).max(100_000),
    targets: z.array(id).min(2).max(100_000),
    t0Range: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]),
    steps: z.number().int().min(1).max(1_000_000),
    batchSize: z.number().int().min(2).max(512).default(32),
    name: folderName,
    model: EntryIdSchema.nullable().default(null),
    /** a latent (Stable Diffusion-family) model: the square size its images are read at, and the text its fakes are translated with */
    latent: LatentTrainingSchema.nullable().default(null),
    /** the discriminator's view: images average-pooled by this factor first (cheaper guidance; 1 = full resolution; null: the trainer's default, 2 for images, 1 for latents) */
    downsample: z
      .union([z.literal(1), z.literal(2), z.literal(4)])
      .nullable()
      .default(null),
    /** dg-math §10: BCE targets 1 − ε / ε (0.1 and R1 1 by default: the pilot in docs/benchmarks.md, dg-pilot) */
    labelSmoothing: z.number().min(0).lt(0.5).default(0.1),
    /** dg-math §10: R1 weight γ on real images' ‖∇x logit‖² */
    r1Gamma: z.number().min(0).max(1000).default(1),
    /**
     * dg-math §10, iterated rounds: train the next round of this discriminator — its fakes are the sources'
     * translations guided by it (at its recommended weight); the new entry is it plus this round. null: a new one
     */
    refine: EntryIdSchema.nullable().default(null),
  })
  .refine((r) => r.t0Range[0] <= r.t0Range[1], {
    message: 't0 range must be low, high with low ≤ high',
    path: ['t0Range'],
  });

export const SettingsSchema = z.object({
  executionProvider: z.enum(['cpu', 'cuda', 'dml', 'coreml', 'webgpu']).default('cpu'),
  /** ONNX Runtime intra-op threads; 0 = all cores */
  threads: z.number().int().min(0).max(256).default(0),
  /** where translated PNGs are also written (besides the gallery); null = the studio's data folder */
  outputDir: z.string().max(4096).nullable().default(null),
  /** more folders holding models: Stable Diffusion-family folders in diffusers' ONNX layout (each, or one level down) */
  modelFolders: z
    .array(
      z
        .string()
        .max(4096)
        .regex(/^(\/|[A-Za-z]:[\\/])/, 'a model folder must be an absolute path'),
    )
    .max(32)
    .default([]),
  /** send translations to the workers on this Redis (docs/scale-out.md); null = translate here */
  queue: z
    .string()
    .max(2048)
    .regex(/^rediss?:\/\/\S+$/, 'a Redis URL: redis://host:6379 (rediss:// for TLS)')
    .nullable()
    .default(null),
});
export type Settings = z.infer<typeof SettingsSchema>;

export const ImportModelSchema = z.object({
  kind: z.enum(['score', 'discriminator', 'classifier']),
  files: z
    .array(
      z.object({
        name: z
          .string()
          .min(1)
          .max(255)
          .regex(/^[^/\\]+$/, 'a file name, not a path')
          .regex(/^[^.]/, 'a file name that does not start with a dot'),
        data: z.instanceof(Uint8Array),
      }),
    )
    .min(1)
    .max(8),
});

/** A bare ONNX file to propose a manifest for (dg-studio inspect, in the studio). */
export const ProposeManifestSchema = z.object({
  kind: z.enum(['score', 'discriminator', 'classifier']).optional(),
  file: z.object({
    name: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[^/\\]+\.onnx$/i, 'an .onnx file name, not a path'),
    data: z.instanceof(Uint8Array),
  }),
});

export interface ManifestProposal {
  kind: 'score' | 'discriminator' | 'classifier';
  kindWhy: string;
  /** the proposed manifest, as JSON text for the user to edit */
  manifest: string;
  guesses: string[];
  inputs: { name: string; dtype: string; shape: string[] | null; role: string }[];
  outputs: { name: string; dtype: string; shape: string[] | null; role: string }[];
  /** null: it loaded and ran on two items; else why not */
  problem: string | null;
  warnings: string[];
}

const Setting = z.object({ t0: z.number(), dgWeight: z.number() });
export const CreateStudySchema = z.object({
  name: z.string().min(1).max(200),
  question: z.enum(['realism', 'faithfulness']),
  /** two settings (A/B) or a grid; every pair of settings is compared on every source */
  settings: z.array(Setting).min(2).max(16),
  seed: z.number().int().min(0).default(0),
});

export interface InterruptedRun {
  id: number;
  createdAt: string;
  /** sources in the run, and how many have a result */
  total: number;
  done: number;
  t0: number;
  dgWeight: number;
  modelName: string;
}

export interface StudyItemDto {
  itemId: number;
  position: number;
  total: number;
  done: number;
  source: string | null;
  left: string;
  right: string;
}

/** an annotator's name */
export const AnnotatorNameSchema = z.string().min(1).max(100);

export interface AnnotatorLinkDto {
  id: number;
  studyId: number;
  annotator: string;
  createdAt: string;
  revoked: boolean;
  /** judgements this annotator has made in the study (undone ones not counted) */
  judged: number;
}

/** What an annotator's page knows of its study: the question, never the settings. */
export interface AnnotatorStudyDto {
  name: string;
  question: 'realism' | 'faithfulness';
  annotator: string;
}
