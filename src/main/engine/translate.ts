/**
 * One batch through SDEdit + guidance: the function every front end ends up calling.
 */
import type { TranslateParams } from '../../shared/params.js';
import { discriminatorGuidance, type Critic, type DgDiagnostics } from './guidance.js';
import { BatchRng } from './rng.js';
import type { StepInfo } from './samplers.js';
import type { ScoreModel } from './score-model.js';
import { sdedit } from './sdedit.js';
import type { Tensor } from './tensor.js';
import { t0RangeProblem } from '../../shared/manifest.js';

export interface TranslateBatchOptions {
  /** one seed per item (A1111: seed + index in the run) */
  seeds: number[];
  critic?: Critic | undefined;
  onStep?: ((info: StepInfo) => void | Promise<void>) | undefined;
  onDiagnostics?: ((d: DgDiagnostics) => void) | undefined;
  signal?: AbortSignal | undefined;
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
  const w2 = params.dgWeight2 ?? params.dgWeight;
  const useDg = opts.critic && (params.dgWeight > 0 || w2 > 0);
  const guidance = useDg
    ? discriminatorGuidance(
        opts.critic!,
        n,
        {
          w1: params.dgWeight,
          w2,
          window: params.dgWindow,
          boosting: params.boosting ?? undefined,
        },
        opts.onDiagnostics,
      )
    : undefined;
  const labels = params.classLabel === null ? undefined : Array.from({ length: n }, () => params.classLabel!);
  return sdedit(
    model.denoiser(labels),
    model.schedule,
    sources,
    {
      t0: params.t0,
      steps: params.steps,
      sampler: params.sampler,
      eta: params.eta,
      churn: { sChurn: params.churn },
      spacing: params.spacing,
    },
    { rng: new BatchRng(opts.seeds), guidance, onStep: opts.onStep, signal: opts.signal },
  );
}
