/**
 * The adapter at the edge: whatever a network predicts, the samplers see one canonical
 * VE denoiser D(x_ve; σ_ve) (k-diffusion's design; dg-math §1–§2).
 */
import type { ScoreModelManifest, TimeInputSpec } from '../../../shared/manifest.js';
import { encodeTime, type ModelSchedule } from './model-schedule.js';
import { denoiserFromEps, denoiserFromVpScore, edmPreconditioning, x0FromV, type Prediction } from '../models/parameterizations.js';
import { alphaFromSigmaVe } from '../models/schedules.js';
import { combinePerItem, filled, firstNonFinite, scale, type Tensor } from '../tensor.js';

/** D(x_ve; σ_ve), one σ per batch item. */
export type Denoiser = (xVe: Tensor, sigmaVe: Float64Array) => Promise<Tensor>;

/** One network evaluation: model-space input and encoded time, one value per item. */
export type NetworkCall = (x: Tensor, time: Float64Array) => Promise<Tensor>;

export interface DenoiserSpec {
  name: string;
  prediction: Prediction;
  schedule: ModelSchedule;
  timeInput: TimeInputSpec;
  preconditioning: ScoreModelManifest['preconditioning'];
}

export function canonicalDenoiser(net: NetworkCall, spec: DenoiserSpec): Denoiser {
  const { schedule } = spec;
  return async (xVe, sigmaVe) => {
    const n = sigmaVe.length;
    const alpha = schedule.isVp ? sigmaVe.map(alphaFromSigmaVe) : filled(n, 1);
    const sigmaVp = sigmaVe.map((s, i) => s * alpha[i]!);
    const edm = spec.preconditioning.kind === 'edm' ? spec.preconditioning : null;
    const pre = edm ? Array.from(sigmaVe, (s) => edmPreconditioning(s, edm.sigmaData)) : null;
    const inScale = pre ? Float64Array.from(pre, (c) => c.cIn) : alpha;
    const xIn = scale(xVe, inScale);
    const time = Float64Array.from(sigmaVe, (s) => encodeTime(schedule, spec.timeInput, s));
    const out = await net(xIn, time);
    const bad = firstNonFinite(out.data);
    if (bad >= 0) {
      const item = Math.floor(bad / (out.data.length / n));
      throw new Error(
        `score model "${spec.name}" returned ${out.data[bad]} at σ=${sigmaVe[item]!.toPrecision(4)} (batch item ${item}); ` +
          'check the manifest (time input, value range) or the exported model',
      );
    }
    switch (spec.prediction) {
      case 'eps':
        return denoiserFromEps(out, xVe, sigmaVe);
      case 'x0':
        return out;
      case 'v':
        return x0FromV(out, xIn, alpha, sigmaVp);
      case 'edm-denoiser':
        return pre
          ? combinePerItem(
              xVe,
              pre.map((c) => c.cSkip),
              out,
              pre.map((c) => c.cOut),
            )
          : out;
      case 'score':
        return denoiserFromVpScore(out, xIn, alpha, sigmaVp);
    }
  };
}
