/**
 * A score model's schedule as the samplers see it: VE noise levels σ_ve, the σ ladder an
 * SDEdit run walks down, and what the network must be fed for a given σ_ve.
 */
import type { ScheduleSpec, TimeInputSpec } from '../../../shared/manifest.js';
import {
  alphaBarsFromBetas,
  cvpAlphaBar,
  cvpTimeFromAlphaBar,
  ddpmCosineBetas,
  ddpmLinearBetas,
  scaledLinearBetas,
  karrasSigmas,
  lvpSigmaVe,
  lvpTimeFromSigmaVe,
} from '../models/schedules.js';

/** σ ladders: Karras ρ = 7, uniform in the model's time, or uniform in λ = −log σ (DPM-Solver's logSNR spacing) */
export type Spacing = 'karras' | 'uniform' | 'lambda';

/** Continuous VP samplers stop here before the final jump to σ = 0. */
const CONTINUOUS_T_MIN = 1e-3;

export interface ModelSchedule {
  readonly spec: ScheduleSpec;
  /** VP models see x_vp = α·x_ve; VE models see x_ve. */
  readonly isVp: boolean;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  /** σ_ve at a time fraction t ∈ (0, 1] in the model's own time (dg-math §3). */
  sigmaAt(tFraction: number): number;
  /** The model's own time for a VE level (discrete: fractional step index). */
  timeFromSigma(sigmaVe: number): number;
  /**
   * Descending σ_ve ladder from t0 with `steps` model evaluations, ending with 0. Its last level before 0 is
   * the ladder's floor (dg-math §8): `sigmaFloor` when given, else the model's own floor (its manifest's
   * `recommendedSigmaMin`), else the smallest level the schedule has; never above σ(t0).
   */
  sdeditSigmas(t0Fraction: number, steps: number, spacing?: Spacing, sigmaFloor?: number): number[];
}

// dg-math §1: σ_ve of discrete step i, sqrt((1 - ᾱ_i)/ᾱ_i)
export function discreteSigmas(alphaBars: Float64Array): Float64Array {
  return alphaBars.map((ab) => Math.sqrt((1 - ab) / ab));
}

/** Fractional index of σ in an ascending σ table, interpolated in log σ (k-diffusion's sigma_to_t). */
export function fractionalStepFromSigma(sigmaVe: number, table: Float64Array): number {
  const last = table.length - 1;
  const ls = Math.log(sigmaVe);
  if (ls <= Math.log(table[0]!)) return 0;
  if (ls >= Math.log(table[last]!)) return last;
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (Math.log(table[mid]!) <= ls) lo = mid;
    else hi = mid;
  }
  const a = Math.log(table[lo]!);
  const b = Math.log(table[hi]!);
  return lo + (ls - a) / (b - a);
}

function checkT0(t0Fraction: number): void {
  if (!(t0Fraction > 0 && t0Fraction <= 1)) throw new Error(`t0 must be in (0, 1], got ${t0Fraction}`);
}

function checkSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a positive integer, got ${steps}`);
}

function checkFloor(sigmaFloor: number): number {
  if (!(sigmaFloor > 0 && Number.isFinite(sigmaFloor)))
    throw new Error(`the ladder's floor σ must be a positive number, got ${sigmaFloor}`);
  return sigmaFloor;
}

function ladder(sigmaHigh: number, sigmaLow: number, steps: number, spacing: Spacing, toSigma?: (u: number) => number) {
  if (spacing === 'lambda')
    return [...Array.from({ length: steps }, (_, i) => sigmaHigh * (sigmaLow / sigmaHigh) ** (steps === 1 ? 0 : i / (steps - 1))), 0];
  if (spacing === 'karras' || !toSigma) return [...karrasSigmas(steps, sigmaLow, sigmaHigh), 0];
  return [...Array.from({ length: steps }, (_, i) => toSigma(steps === 1 ? 0 : i / (steps - 1))), 0];
}

/** A continuous-time VP schedule (LVP, cosine): σ(t) and its inverse; SDEdit's ladder from σ(t0) down to the
 * smallest time sampled (or t0, if smaller), spaced as asked. */
function continuousVpSchedule(
  spec: ModelSchedule['spec'],
  sigmaAt: (t: number) => number,
  timeFromSigma: (sigma: number) => number,
  modelFloor: number | undefined,
): ModelSchedule {
  return {
    spec,
    isVp: true,
    sigmaMin: sigmaAt(CONTINUOUS_T_MIN),
    sigmaMax: sigmaAt(1),
    sigmaAt,
    timeFromSigma,
    sdeditSigmas(t0, steps, spacing = 'karras', sigmaFloor = modelFloor) {
      checkT0(t0);
      checkSteps(steps);
      const floorT = sigmaFloor === undefined ? CONTINUOUS_T_MIN : Math.max(CONTINUOUS_T_MIN, timeFromSigma(checkFloor(sigmaFloor)));
      if (floorT >= t0 && sigmaFloor !== undefined) return [sigmaAt(t0), 0];
      const tLow = Math.min(floorT, t0);
      return ladder(sigmaAt(t0), sigmaAt(tLow), steps, spacing, (u) => sigmaAt(t0 + u * (tLow - t0)));
    },
  };
}

/**
 * Distinct integer steps, descending from `top` to 0, as near as they can be to descending fractional
 * ones: rounded, then pushed up from the bottom and down from the top wherever rounding merged two
 * (a Karras ladder crowds the low end), so `min(k, top + 1)` wanted steps give that many evaluations.
 */
export function integerSteps(fractional: number[], top: number): number[] {
  const n = Math.min(fractional.length, top + 1);
  const wanted = fractional.slice(0, n);
  if (n < fractional.length) wanted[n - 1] = fractional.at(-1)!; // fewer steps than asked: keep the ends
  const idx = wanted.map((u) => Math.min(top, Math.max(0, Math.round(u))));
  for (let k = n - 2; k >= 0; k--) idx[k] = Math.max(idx[k]!, idx[k + 1]! + 1);
  idx[0] = Math.min(idx[0]!, top);
  for (let k = 1; k < n; k++) idx[k] = Math.min(idx[k]!, idx[k - 1]! - 1);
  return idx;
}

/**
 * A schedule's σ(t), its inverse and its SDEdit ladder. `modelFloor`: the model's own ladder floor (its manifest's
 * `recommendedSigmaMin`, dg-math §8), used when a translation does not choose one.
 */
export function modelSchedule(spec: ScheduleSpec, modelFloor?: number): ModelSchedule {
  if (modelFloor !== undefined) checkFloor(modelFloor);
  switch (spec.kind) {
    case 'ddpm-linear':
    case 'ddpm-scaled-linear':
    case 'ddpm-cosine': {
      const betas =
        spec.kind === 'ddpm-linear'
          ? ddpmLinearBetas(spec.steps, spec.betaStart, spec.betaEnd)
          : spec.kind === 'ddpm-scaled-linear'
            ? scaledLinearBetas(spec.steps, spec.betaStart, spec.betaEnd)
            : ddpmCosineBetas(spec.steps, spec.s);
      const table = discreteSigmas(alphaBarsFromBetas(betas));
      const T = spec.steps;
      const stepAt = (t: number) => Math.round(t * (T - 1));
      return {
        spec,
        isVp: true,
        sigmaMin: table[0]!,
        sigmaMax: table[T - 1]!,
        sigmaAt: (t) => table[stepAt(t)]!,
        timeFromSigma: (s) => fractionalStepFromSigma(s, table),
        sdeditSigmas(t0, steps, spacing = 'karras', sigmaFloor = modelFloor) {
          checkT0(t0);
          checkSteps(steps);
          // dg-math §3: t0 maps to step round(t0·(T-1)); the network only knows integer steps
          const i0 = stepAt(t0);
          // the floor's step (dg-math §8): step 0 unless the model or the translation asks for a higher floor
          const iLow = sigmaFloor === undefined ? 0 : Math.round(fractionalStepFromSigma(checkFloor(sigmaFloor), table));
          if (iLow >= i0) return [table[i0]!, 0];
          // the wanted ladder as fractional steps from i0 down to iLow: DDIM's even ladder, or the Karras /
          // λ-uniform σ ladder between those steps' σ; each then on its nearest integer step
          const fractional =
            spacing === 'uniform'
              ? Array.from({ length: steps }, (_, k) => iLow + (i0 - iLow) * (1 - (steps === 1 ? 0 : k / (steps - 1))))
              : ladder(table[i0]!, table[iLow]!, steps, spacing)
                  .slice(0, -1)
                  .map((s) => fractionalStepFromSigma(s, table));
          return [
            ...integerSteps(
              fractional.map((u) => u - iLow),
              i0 - iLow,
            ).map((i) => table[i + iLow]!),
            0,
          ];
        },
      };
    }
    case 'lvp': {
      const p = { betaMin: spec.betaMin, betaMax: spec.betaMax };
      return continuousVpSchedule(
        spec,
        (t) => lvpSigmaVe(t, p),
        (s) => lvpTimeFromSigmaVe(s, p),
        modelFloor,
      );
    }
    case 'cvp': {
      const sigmaAt = (t: number) => {
        const ab = cvpAlphaBar(Math.min(t, 0.9999), spec.s);
        return Math.sqrt((1 - ab) / ab);
      };
      return continuousVpSchedule(spec, sigmaAt, (s) => cvpTimeFromAlphaBar(1 / (1 + s * s), spec.s), modelFloor);
    }
    case 'edm': {
      // t0 for a VE model is read as LVP time: the same noise level as a DDPM model at t0.
      const sigmaAt = (t: number) => Math.min(spec.sigmaMax, Math.max(spec.sigmaMin, lvpSigmaVe(t)));
      return {
        spec,
        isVp: false,
        sigmaMin: spec.sigmaMin,
        sigmaMax: spec.sigmaMax,
        sigmaAt,
        timeFromSigma: (s) => s,
        sdeditSigmas(t0, steps, spacing = 'karras', sigmaFloor = modelFloor) {
          checkT0(t0);
          checkSteps(steps);
          const high = sigmaAt(t0);
          const floor = sigmaFloor === undefined ? spec.sigmaMin : Math.max(spec.sigmaMin, checkFloor(sigmaFloor));
          if (sigmaFloor !== undefined && floor >= high) return [high, 0];
          const low = Math.min(floor, high);
          return ladder(high, low, steps, spacing, (u) => Math.exp(Math.log(high) + u * (Math.log(low) - Math.log(high))));
        },
      };
    }
  }
}

/** The number fed to the network's time input for a VE level (dg-math §2, last paragraph). */
export function encodeTime(schedule: ModelSchedule, enc: TimeInputSpec, sigmaVe: number): number {
  switch (enc.kind) {
    case 'step':
      return schedule.timeFromSigma(sigmaVe) * enc.scale;
    case 't':
      return schedule.timeFromSigma(sigmaVe) * enc.scale;
    case 'sigma':
      return sigmaVe;
    case 'edm-c-noise':
      return Math.log(sigmaVe) / 4;
  }
}
