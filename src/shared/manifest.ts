/**
 * Model manifests: the JSON beside an ONNX file that says how to call it. Shared by the
 * engine (loading), the services (registry) and the renderer (import dialog errors).
 */
import { z } from 'zod';
import { issueMessage, valueAt } from './errors.js';

export const ScheduleSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('ddpm-linear'),
    steps: z.number().int().min(2).default(1000),
    betaStart: z.number().positive().default(1e-4),
    betaEnd: z.number().positive().lt(1).default(0.02),
  }),
  /** Stable Diffusion's "scaled_linear": β linear in √β (dg-math §11) */
  z.object({
    kind: z.literal('ddpm-scaled-linear'),
    steps: z.number().int().min(2).default(1000),
    betaStart: z.number().positive().default(0.00085),
    betaEnd: z.number().positive().lt(1).default(0.012),
  }),
  z.object({
    kind: z.literal('ddpm-cosine'),
    steps: z.number().int().min(2).default(1000),
    s: z.number().nonnegative().default(0.008),
  }),
  z.object({
    kind: z.literal('lvp'),
    betaMin: z.number().positive().default(0.1),
    betaMax: z.number().positive().default(20),
  }),
  z.object({ kind: z.literal('cvp'), s: z.number().nonnegative().default(0.008) }),
  z.object({
    kind: z.literal('edm'),
    sigmaMin: z.number().positive().default(0.002),
    sigmaMax: z.number().positive().default(80),
    rho: z.number().positive().default(7),
  }),
]);
export type ScheduleSpec = z.infer<typeof ScheduleSchema>;

/**
 * How a network is fed its time. One vocabulary for every manifest kind (docs/manifests.md):
 * `step` (a discrete step index, times `scale`; `steps` = T), `t` (continuous time, times `scale`),
 * `sigma` (the VE noise level), `edm-c-noise` (¼ ln σ, score models only). A score model's time is
 * its own schedule's; a discriminator's or classifier's is LVP time τ (dg-math §4).
 */
export const TimeInputSchema = z.discriminatedUnion('kind', [
  /** discrete step index i (times `scale`), for ddpm-* schedules; `steps`, when given, must equal the schedule's T */
  z.object({ kind: z.literal('step'), scale: z.number().positive().default(1), steps: z.number().int().min(2).optional() }),
  /** continuous time t (times `scale`, e.g. 999 for a network trained on t·999) */
  z.object({ kind: z.literal('t'), scale: z.number().positive().default(1) }),
  /** the VE noise level σ itself */
  z.object({ kind: z.literal('sigma') }),
  /** EDM's c_noise = ¼·ln σ */
  z.object({ kind: z.literal('edm-c-noise') }),
]);
export type TimeInputSpec = z.infer<typeof TimeInputSchema>;

const TensorDType = z.enum(['float32', 'int64', 'int32', 'float64']);

export const ScoreModelManifestSchema = z
  .object({
    format: z.literal('dg-studio/score-model@1'),
    name: z.string().min(1),
    description: z.string().default(''),
    onnx: z.string().min(1).describe('path of the ONNX file, relative to the manifest'),
    io: z
      .object({
        x: z.string().default('x'),
        t: z.string().default('t'),
        classLabel: z.string().optional(),
        output: z.string().default('out'),
      })
      .prefault({}),
    /** dtype of the time input; read from the ONNX file when absent (a disagreeing value is a warning) */
    timeDType: TensorDType.optional(),
    /** one time per item (`batch`) or one for the whole call (`scalar`); read from the file's rank when absent */
    timeShape: z.enum(['batch', 'scalar']).optional(),
    prediction: z.enum(['eps', 'x0', 'v', 'edm-denoiser', 'score']),
    schedule: ScheduleSchema,
    timeInput: TimeInputSchema,
    preconditioning: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('none') }),
        z.object({ kind: z.literal('edm'), sigmaData: z.number().positive().default(0.5) }),
      ])
      .default({ kind: 'none' }),
    dataShape: z.array(z.number().int().positive()).min(1).describe('one item, e.g. [3, 64, 64]'),
    valueRange: z.tuple([z.number(), z.number()]).default([-1, 1]),
    classes: z.object({ count: z.number().int().positive(), encoding: z.enum(['index', 'one-hot']).default('index') }).optional(),
    license: z.string().optional(),
    /**
     * times (fractions of the schedule, as t0) the network was trained on: a model trained with
     * --t-max 0.8 is only valid for t0 ≤ 0.8
     */
    validTimeRange: z.tuple([z.number().min(0), z.number().gt(0).max(1)]).optional(),
    /** the t0 its maker found best for this model (the CLI's default --t0 and the studio's starting t0; else 0.5) */
    recommendedT0: z.number().gt(0).max(1).optional(),
    /**
     * the floor of its sampling ladder (VE σ; dg-math §8): the last level before the final step to 0, where
     * its maker measured it still removes the noise; absent: the smallest level of its schedule
     */
    recommendedSigmaMin: z.number().positive().max(1).optional(),
    /** how the model was made (trainer, data digest, steps, images seen, wall time, final loss) */
    training: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((m, ctx) => {
    if (m.validTimeRange && m.validTimeRange[0] >= m.validTimeRange[1]) {
      ctx.addIssue({ code: 'custom', path: ['validTimeRange'], message: 'validTimeRange must be [low, high] with low < high' });
    }
    if (m.recommendedT0 !== undefined && t0RangeProblem(m, m.recommendedT0)) {
      ctx.addIssue({ code: 'custom', path: ['recommendedT0'], message: `recommendedT0 ${m.recommendedT0} is outside validTimeRange` });
    }
    const discrete = m.schedule.kind === 'ddpm-linear' || m.schedule.kind === 'ddpm-scaled-linear' || m.schedule.kind === 'ddpm-cosine';
    if (m.timeInput.kind === 'step' && !discrete) {
      ctx.addIssue({ code: 'custom', path: ['timeInput'], message: 'a "step" time input needs a ddpm-* schedule' });
    }
    const T = 'steps' in m.schedule ? m.schedule.steps : undefined;
    if (m.timeInput.kind === 'step' && T !== undefined && m.timeInput.steps !== undefined && m.timeInput.steps !== T) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeInput', 'steps'],
        message: `timeInput.steps ${m.timeInput.steps} differs from schedule.steps ${T}; give one T (schedule.steps)`,
      });
    }
    if (m.preconditioning.kind === 'edm' && m.schedule.kind !== 'edm') {
      ctx.addIssue({ code: 'custom', path: ['preconditioning'], message: 'EDM preconditioning needs the edm schedule' });
    }
    if (m.prediction === 'edm-denoiser' && m.schedule.kind !== 'edm') {
      ctx.addIssue({ code: 'custom', path: ['prediction'], message: 'an edm-denoiser prediction needs the edm schedule' });
    }
    if (m.valueRange[0] >= m.valueRange[1]) {
      ctx.addIssue({ code: 'custom', path: ['valueRange'], message: 'valueRange must be [low, high] with low < high' });
    }
    if (m.classes && !m.io.classLabel) {
      ctx.addIssue({ code: 'custom', path: ['io', 'classLabel'], message: 'a class-conditional model names its class input' });
    }
  });
export type ScoreModelManifest = z.infer<typeof ScoreModelManifestSchema>;
export type ScoreModelManifestInput = z.input<typeof ScoreModelManifestSchema>;

/**
 * Why a t0 cannot be used with a model (null when it can): SDEdit starts at t0, so a model trained
 * only on t ≤ t_max (validTimeRange) cannot translate from a larger t0.
 */
export function t0RangeProblem(m: Pick<ScoreModelManifest, 'name' | 'validTimeRange'>, t0: number): string | null {
  if (!m.validTimeRange) return null;
  const [, hi] = m.validTimeRange;
  if (t0 > hi + 1e-9) return `t0 ${t0} is above the largest time the model "${m.name}" was trained on (${hi}); choose t0 ≤ ${hi}`;
  return null;
}

/** Turn zod issues into one readable line per problem, naming the file and each field by its JSON path. */
export function describeManifestErrors(source: string, error: z.ZodError, raw?: unknown): string {
  const lines = error.issues.map(
    (i) =>
      `  - ${i.path.length ? i.path.join('.') : '(top level)'}: ${issueMessage(i, raw === undefined ? undefined : valueAt(raw, i.path))}`,
  );
  return `invalid manifest "${source}":\n${lines.join('\n')}`;
}

/** An isotropic Gaussian mixture; means as numbers or as images relative to the manifest. */
export const MixtureSpecSchema = z
  .object({
    weights: z.array(z.number().positive()).min(1),
    variances: z.array(z.number().positive()).min(1),
    means: z.array(z.array(z.number())).optional(),
    meanImages: z.array(z.string()).optional(),
  })
  .refine((m) => (m.means ? 1 : 0) + (m.meanImages ? 1 : 0) === 1, { message: 'give exactly one of means or meanImages' })
  .refine((m) => m.variances.length === m.weights.length && (m.means ?? m.meanImages)!.length === m.weights.length, {
    message: 'weights, variances and means need one entry per component',
  });

/** How a discriminator or classifier is fed its time, given LVP τ (dg-math §4): the same kinds as TimeInputSchema. */
export const DiscriminatorTimeSchema = z.discriminatedUnion('kind', [
  /** LVP time τ (times `scale`, e.g. 999 for networks trained on integer-like t); formerly `lvp-tau` */
  z.object({ kind: z.literal('t'), scale: z.number().positive().default(1) }),
  /** discrete DDPM-linear step i = τ·T - 1 (dg-math §1: step i is LVP time (i+1)/T), times `scale` */
  z.object({ kind: z.literal('step'), steps: z.number().int().min(2).default(1000), scale: z.number().positive().default(1) }),
  /** the VE level σ(τ) = sqrt(e^{B(τ)} - 1) */
  z.object({ kind: z.literal('sigma') }),
]);
export type DiscriminatorTimeSpec = z.infer<typeof DiscriminatorTimeSchema>;

/** The fields of a network fed LVP time τ (discriminators, classifiers; dg-math §4). */
const LVP_NETWORK_FIELDS = {
  timeInput: DiscriminatorTimeSchema.default({ kind: 't', scale: 1 }),
  /** dtype of the time input; read from the ONNX file when absent (a disagreeing value is a warning) */
  timeDType: z.enum(['float32', 'int64']).optional(),
  /** coordinates the network was trained in: LVP x_vp (the paper's choice) or VE x_ve */
  coordinates: z.enum(['vp', 've']).default('vp'),
  lvp: z
    .object({ betaMin: z.number().positive().default(0.1), betaMax: z.number().positive().default(20) })
    .default({ betaMin: 0.1, betaMax: 20 }),
  dataShape: z.array(z.number().int().positive()).min(1),
  valueRange: z.tuple([z.number(), z.number()]).default([-1, 1]),
};

/**
 * A discriminator's DG weight that its evidence found useful: the CLI's and studio's default w with it
 * (else 1, the paper's exact correction); a weak discriminator needs a larger one.
 */
const RECOMMENDED_WEIGHT = z.number().min(0).max(100).optional();

export const DiscriminatorManifestSchema = z.discriminatedUnion('kind', [
  z.object({
    format: z.literal('dg-studio/discriminator@1'),
    kind: z.literal('onnx'),
    name: z.string().min(1),
    description: z.string().default(''),
    /** forward network (x_τ, t) → logit or d, relative to the manifest */
    onnx: z.string().min(1),
    /** optional prebuilt guidance graph [log r, ∇x log r]; built from `onnx` when absent */
    guidanceOnnx: z.string().optional(),
    io: z.object({ x: z.string().default('x'), t: z.string().default('t'), output: z.string().default('logit') }).prefault({}),
    output: z.enum(['logit', 'probability']).default('logit'),
    ...LVP_NETWORK_FIELDS,
    /** class names of a class-conditional discriminator (its `class_label` input) */
    classes: z.array(z.string()).optional(),
    /**
     * later rounds (dg-math §10, iterated guidance): forward networks with the same io, time input and coordinates,
     * each trained against translations guided by the rounds before it; log r = logit + Σ weight·logit_k
     */
    refinements: z
      .array(
        z.object({
          onnx: z.string().min(1),
          weight: z.number().positive().max(10).default(1),
          training: z.record(z.string(), z.unknown()).optional(),
        }),
      )
      .max(8)
      .optional(),
    recommendedWeight: RECOMMENDED_WEIGHT,
    training: z.record(z.string(), z.unknown()).optional(),
  }),
  z.object({
    format: z.literal('dg-studio/discriminator@1'),
    kind: z.literal('analytic-mixture-ratio'),
    name: z.string().min(1),
    description: z.string().default(''),
    /** log r = log p_τ(x) - log q_τ(x): the optimal discriminator of real p against fake q (dg-math §7) */
    real: MixtureSpecSchema,
    fake: MixtureSpecSchema,
    recommendedWeight: RECOMMENDED_WEIGHT,
    dataShape: z.array(z.number().int().positive()).min(1),
    valueRange: z.tuple([z.number(), z.number()]).default([-1, 1]),
  }),
]);
export type DiscriminatorManifest = z.infer<typeof DiscriminatorManifestSchema>;
/** A discriminator given as ONNX graphs (round 1's forward graph, and any later rounds'). */
export type OnnxDiscriminatorManifest = Extract<DiscriminatorManifest, { kind: 'onnx' }>;

/**
 * A time-conditioned classifier log p(y | x_τ, τ) for classifier guidance (paper Eq. 6): read by
 * `inspect` today; sampling with it is issue 17's.
 */
export const ClassifierManifestSchema = z.object({
  format: z.literal('dg-studio/classifier@1'),
  name: z.string().min(1),
  description: z.string().default(''),
  onnx: z.string().min(1),
  io: z.object({ x: z.string().default('x'), t: z.string().default('t'), output: z.string().default('logits') }).prefault({}),
  /** unnormalised `logits` (log-softmax is applied) or `log-probabilities` */
  output: z.enum(['logits', 'log-probabilities']).default('logits'),
  ...LVP_NETWORK_FIELDS,
  /** the class names, one per output column */
  classes: z.array(z.string()).min(2),
  training: z.record(z.string(), z.unknown()).optional(),
});
export type ClassifierManifest = z.infer<typeof ClassifierManifestSchema>;

export const MANIFEST_FORMATS = {
  score: 'dg-studio/score-model@1',
  discriminator: 'dg-studio/discriminator@1',
  classifier: 'dg-studio/classifier@1',
} as const;
export type ManifestKind = keyof typeof MANIFEST_FORMATS;

/**
 * Old spellings still read (with a note for the user): a discriminator's `timeInput.kind`
 * "lvp-tau" is now "t" (one time vocabulary for every kind). Returns the upgraded copy.
 */
export function upgradeManifest(raw: unknown): { raw: unknown; notes: string[] } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { raw, notes: [] };
  const m = raw as Record<string, unknown>;
  const notes: string[] = [];
  const ti = m['timeInput'] as Record<string, unknown> | undefined;
  if (ti && typeof ti === 'object' && ti['kind'] === 'lvp-tau') {
    notes.push('timeInput.kind "lvp-tau" is now spelled "t" (a discriminator\'s t is LVP time τ); read as "t"');
    return { raw: { ...m, timeInput: { ...ti, kind: 't' } }, notes };
  }
  return { raw, notes };
}

/** Which kind a manifest declares by its `format` (null when it names none we know). */
export function manifestKindOf(raw: unknown): ManifestKind | null {
  const format = (raw as { format?: unknown } | null)?.format;
  for (const [k, f] of Object.entries(MANIFEST_FORMATS)) if (f === format) return k as ManifestKind;
  return null;
}

/** Parse any manifest by its format: the data, or the readable errors naming `source`. */
export function parseManifest(
  source: string,
  raw: unknown,
):
  | { ok: true; kind: ManifestKind; manifest: ScoreModelManifest | DiscriminatorManifest | ClassifierManifest; notes: string[] }
  | { ok: false; error: string } {
  const kind = manifestKindOf(raw);
  if (!kind) {
    const got = (raw as { format?: unknown } | null)?.format;
    return {
      ok: false,
      error: `invalid manifest "${source}":\n  - format: ${got === undefined ? 'missing' : `"${String(got)}" is not known`}; use one of ${Object.values(MANIFEST_FORMATS).join(', ')}`,
    };
  }
  const up = upgradeManifest(raw);
  const schema =
    kind === 'score' ? ScoreModelManifestSchema : kind === 'discriminator' ? DiscriminatorManifestSchema : ClassifierManifestSchema;
  const r = schema.safeParse(up.raw);
  if (!r.success) return { ok: false, error: describeManifestErrors(source, r.error, up.raw) };
  return { ok: true, kind, manifest: r.data, notes: up.notes };
}
