/**
 * One batch through SDEdit + guidance: the function every front end ends up calling.
 */
import type { TranslateParams } from '../../../shared/params.js';
import {
  classifierGuidance,
  combineGuidance,
  discriminatorGuidance,
  type Critic,
  type DgDiagnostics,
  type GuidanceHook,
} from './guidance.js';
import { BatchRng } from '../rng.js';
import type { StepInfo } from './samplers.js';
import type { ScoreModel } from '../models/score-model.js';
import { sdedit, sdeditParamsOf } from './sdedit.js';
import type { Tensor } from '../tensor.js';
import { t0RangeProblem } from '../../../shared/manifest.js';

export interface TranslateBatchOptions {
  /** one seed per item (A1111: seed + index in the run) */
  seeds: number[];
  critic?: Critic | undefined;
  /** a classifier's log p(y | x_τ) for the run's class: classifier guidance with params.cgWeight */
  classifier?: Critic | undefined;
  onStep?: ((info: StepInfo) => void | Promise<void>) | undefined;
  onDiagnostics?: ((d: DgDiagnostics) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * The guidance of a translation (dg-math §5, Eq. 6): s_θ + w_CG·∇ log p(y|x_t) + w_DG·c — DG from the critic
 * when a weight is set, classifier guidance when a classifier and its weight are; pixel and latent runs alike.
 */
export function guidanceOf(
  params: TranslateParams,
  n: number,
  opts: Pick<TranslateBatchOptions, 'critic' | 'classifier' | 'onDiagnostics'>,
): GuidanceHook | undefined {
  const w2 = params.dgWeight2 ?? params.dgWeight;
  const useDg = opts.critic && (params.dgWeight > 0 || w2 > 0);
  const dg = useDg
    ? discriminatorGuidance(
        opts.critic!,
        n,
        { w1: params.dgWeight, w2, window: params.dgWindow, boosting: params.boosting ?? undefined },
        opts.onDiagnostics,
      )
    : undefined;
  const cg = opts.classifier && params.cgWeight > 0 ? classifierGuidance(opts.classifier, params.cgWeight) : undefined;
  const hooks = [dg, cg].filter((h): h is GuidanceHook => !!h);
  return hooks.length > 1 ? combineGuidance(...hooks) : hooks[0];
}

export async function translateBatch(
  model: ScoreModel,
  sources: Tensor,
  params: TranslateParams,
  opts: TranslateBatchOptions,
): Promise<Tensor> {
  const n = sources.shape[0]!;
  const outOfRange = t0RangeProblem(model.manifest, params.t0);
  if (outOfRange) throw new Error(outOfRange);
  if (opts.seeds.length !== n) throw new Error(`need one seed per item: ${n} items, ${opts.seeds.length} seeds`);
  const guidance = guidanceOf(params, n, opts);
  const labels = params.classLabel === null ? undefined : Array.from({ length: n }, () => params.classLabel!);
  return sdedit(model.denoiser(labels), model.schedule, sources, sdeditParamsOf(params), {
    rng: new BatchRng(opts.seeds),
    guidance,
    onStep: opts.onStep,
    signal: opts.signal,
  });
}
