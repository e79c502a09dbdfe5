import { describe, expect, it } from 'vitest';
import {
  alphaBarsFromBetas,
  alphaFromSigmaVe,
  cvpAlphaBar,
  cvpTimeFromLvpTime,
  ddpmCosineBetas,
  ddpmLinearBetas,
  importanceSampledLvpTime,
  karrasSigmas,
  lvpAlpha,
  lvpIntegratedBeta,
  lvpSigma,
  lvpSigmaVe,
  lvpTimeFromSigmaVe,
  LVP_TAU_MIN,
  sigmaVeFromVp,
  sigmaVpFromSigmaVe,
} from '../../src/main/engine/models/schedules.js';
import { discreteSigmas, fractionalStepFromSigma, integerSteps, modelSchedule } from '../../src/main/engine/sampling/model-schedule.js';

const taus = [1e-5, 1e-3, 0.05, 0.3, 0.5, 0.9, 1];

describe('LVP schedule (dg-math §1)', () => {
  it('keeps α² + σ² = 1', () => {
    for (const t of taus) expect(lvpAlpha(t) ** 2 + lvpSigma(t) ** 2).toBeCloseTo(1, 14);
  });
  it('α(τ) = exp(-¼τ²(β1-β0) - ½τβ0) with the default β0 = 0.1, β1 = 20', () => {
    expect(lvpAlpha(0.5)).toBeCloseTo(Math.exp(-0.25 * 0.25 * 19.9 - 0.5 * 0.5 * 0.1), 14);
  });
  it('τ(σ_ve(τ)) = τ: the VE→LVP time map inverts the LVP VE level', () => {
    for (const t of taus) expect(lvpTimeFromSigmaVe(lvpSigmaVe(t)) / t).toBeCloseTo(1, 9);
  });
  it('the VE level of a VP state is σ_vp/α, and α = 1/sqrt(1+σ_ve²) inverts it', () => {
    for (const t of taus) {
      const s = sigmaVeFromVp(lvpAlpha(t), lvpSigma(t));
      expect(alphaFromSigmaVe(s) / lvpAlpha(t)).toBeCloseTo(1, 12);
      expect(sigmaVpFromSigmaVe(s) / lvpSigma(t)).toBeCloseTo(1, 12);
    }
  });
});

describe('discrete DDPM (dg-math §1)', () => {
  it('linear β 1e-4…0.02, T = 1000 is LVP with t = i/T (to O(β²) per step)', () => {
    const ab = alphaBarsFromBetas(ddpmLinearBetas(1000));
    for (const i of [0, 10, 100, 500, 999]) {
      // ᾱ_i = Π(1-β_j) vs exp(-B((i+1)/T)): log differs by Σβ²/2 ≤ 1000·0.02²/2 = 0.2 at most, far less early on
      const lvp = lvpAlpha((i + 1) / 1000) ** 2;
      expect(Math.abs(Math.log(ab[i]!) - Math.log(lvp))).toBeLessThan(0.005 + 0.00015 * i);
    }
  });
  it('cosine β reproduce the cosine ᾱ(t) at the step boundaries', () => {
    const ab = alphaBarsFromBetas(ddpmCosineBetas(1000));
    for (const i of [0, 100, 500, 900]) expect(ab[i]! / cvpAlphaBar((i + 1) / 1000)).toBeCloseTo(1, 9);
  });
  it('σ_ve of a step is sqrt((1-ᾱ)/ᾱ) and fractional steps interpolate in log σ', () => {
    const table = discreteSigmas(alphaBarsFromBetas(ddpmLinearBetas(1000)));
    expect(fractionalStepFromSigma(table[250]!, table)).toBeCloseTo(250, 9);
    const mid = Math.sqrt(table[10]! * table[11]!);
    expect(fractionalStepFromSigma(mid, table)).toBeCloseTo(10.5, 9);
  });
  it('SDEdit t0 maps to step round(t0·(T-1)) (dg-math §3)', () => {
    const s = modelSchedule({ kind: 'ddpm-linear', steps: 1000, betaStart: 1e-4, betaEnd: 0.02 });
    const table = discreteSigmas(alphaBarsFromBetas(ddpmLinearBetas(1000)));
    const ladder = s.sdeditSigmas(0.5, 10);
    expect(ladder[0]).toBe(table[Math.round(0.5 * 999)]);
    expect(ladder.at(-2)).toBe(table[0]);
    expect(ladder.at(-1)).toBe(0);
    expect(ladder).toHaveLength(11);
  });
  it("a discrete model honours the spacing on integer steps: uniform is DDIM's even ladder, Karras and λ the nearest steps", () => {
    const s = modelSchedule({ kind: 'ddpm-linear', steps: 1000, betaStart: 1e-4, betaEnd: 0.02 });
    const table = discreteSigmas(alphaBarsFromBetas(ddpmLinearBetas(1000)));
    const steps = (l: number[]) => l.slice(0, -1).map((v) => table.indexOf(v));
    expect(steps(s.sdeditSigmas(0.5, 10, 'uniform'))).toEqual([500, 444, 389, 333, 278, 222, 167, 111, 56, 0]);
    // the continuous Karras ladder between the same two σ, each on its nearest step
    const karras = karrasSigmas(10, table[0]!, table[500]!).map((v) => Math.round(fractionalStepFromSigma(v, table)));
    expect(steps(s.sdeditSigmas(0.5, 10, 'karras'))).toEqual(karras);
    expect(karras).toEqual([500, 414, 316, 217, 131, 71, 34, 14, 4, 0]);
    const lambda = steps(s.sdeditSigmas(0.5, 10, 'lambda'));
    expect(lambda).toEqual([500, 375, 246, 142, 75, 37, 17, 7, 2, 0]);
    // where the Karras ladder crowds the low end, merged steps are spread out: as many evaluations as asked
    for (const [n, expected] of [
      [200, 200],
      [600, 501],
    ]) {
      const idx = steps(s.sdeditSigmas(0.5, n!, 'karras'));
      expect(idx).toHaveLength(expected!);
      expect(idx[0]).toBe(500);
      expect(idx.at(-1)).toBe(0);
      idx.slice(1).forEach((v, k) => expect(v).toBeLessThan(idx[k]!));
    }
  });
  it("the ladder's floor (dg-math §8): the last level before 0 is the floor's step, the model's own unless the call gives one", () => {
    const spec = { kind: 'ddpm-linear', steps: 1000, betaStart: 1e-4, betaEnd: 0.02 } as const;
    const table = discreteSigmas(alphaBarsFromBetas(ddpmLinearBetas(1000)));
    const floorStep = Math.round(fractionalStepFromSigma(0.04, table));
    expect(floorStep).toBeGreaterThan(5);
    const steps = (l: number[]) => l.slice(0, -1).map((v) => table.indexOf(v));
    const plain = modelSchedule(spec);
    const floored = modelSchedule(spec, 0.04);
    for (const spacing of ['karras', 'uniform', 'lambda'] as const) {
      const l = steps(floored.sdeditSigmas(0.5, 10, spacing));
      expect(l).toHaveLength(10);
      expect(l[0]).toBe(500);
      expect(l.at(-1)).toBe(floorStep);
      l.slice(1).forEach((v, k) => expect(v).toBeLessThan(l[k]!));
      // the same ladder as the schedule without a model floor given this floor by the call
      expect(floored.sdeditSigmas(0.5, 10, spacing)).toEqual(plain.sdeditSigmas(0.5, 10, spacing, 0.04));
    }
    // uniform: DDIM's even ladder between step 500 and the floor's step
    expect(steps(floored.sdeditSigmas(0.5, 10, 'uniform'))).toEqual(
      Array.from({ length: 10 }, (_, k) => Math.round(floorStep + (500 - floorStep) * (1 - k / 9))),
    );
    // the call's floor wins over the model's; without either the ladder ends on step 0 as before
    expect(steps(floored.sdeditSigmas(0.5, 10, 'karras', table[0]!)).at(-1)).toBe(0);
    expect(steps(plain.sdeditSigmas(0.5, 10)).at(-1)).toBe(0);
    // more steps than there are integer steps above the floor: every one of them, none below the floor
    const many = steps(floored.sdeditSigmas(0.5, 600));
    expect(many).toHaveLength(501 - floorStep);
    expect(Math.min(...many)).toBe(floorStep);
    // a floor at or above σ(t0): one step, the denoiser at σ(t0)
    expect(floored.sdeditSigmas(0.005, 10)).toEqual([table[5]!, 0]);
    expect(() => plain.sdeditSigmas(0.5, 10, 'karras', 0)).toThrow(/floor σ must be a positive number, got 0/);
    expect(() => modelSchedule(spec, Number.NaN)).toThrow(/floor σ must be a positive number/);
  });
  it('a continuous VP and an EDM model end their ladders on the floor too', () => {
    for (const spec of [
      { kind: 'lvp', betaMin: 0.1, betaMax: 20 } as const,
      { kind: 'edm', sigmaMin: 0.002, sigmaMax: 80, rho: 7 } as const,
    ]) {
      const s = modelSchedule(spec, 0.05);
      const l = s.sdeditSigmas(0.5, 8);
      expect(l).toHaveLength(9);
      expect(l.at(-2)).toBeCloseTo(0.05, 9);
      expect(l.at(-1)).toBe(0);
      expect(modelSchedule(spec).sdeditSigmas(0.5, 8).at(-2)).toBeLessThan(0.02);
      expect(s.sdeditSigmas(0.5, 8, 'karras', 0.1).at(-2)).toBeCloseTo(0.1, 9);
    }
  });
  it('integerSteps keeps the ends and separates what rounding merged', () => {
    expect(integerSteps([5.2, 4.9, 4.6, 0.2], 5)).toEqual([5, 4, 3, 0]);
    expect(integerSteps([9.6, 6.4, 0.4, 0.3, 0.1], 9)).toEqual([9, 6, 2, 1, 0]);
    expect(integerSteps([3, 2.5, 2, 1.5, 1, 0.5, 0], 3)).toEqual([3, 2, 1, 0]);
  });
});

describe('CVP time mapping (dg-math §1)', () => {
  it('a CVP network at t_cos(τ) sees the same ᾱ as LVP at τ', () => {
    for (const t of [0.01, 0.2, 0.5, 0.8]) {
      expect(cvpAlphaBar(cvpTimeFromLvpTime(t)) / lvpAlpha(t) ** 2).toBeCloseTo(1, 10);
    }
  });
});

describe('EDM Karras steps (dg-math §1)', () => {
  it('run from σmax to σmin, decreasing, with ρ = 7 spacing', () => {
    const s = karrasSigmas(18, 0.002, 80);
    expect(s[0]).toBeCloseTo(80, 10);
    expect(s.at(-1)).toBeCloseTo(0.002, 12);
    for (let i = 1; i < s.length; i++) expect(s[i]!).toBeLessThan(s[i - 1]!);
    expect(s[9]).toBeCloseTo((80 ** (1 / 7) + (9 / 17) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7, 10);
  });
});

describe('importance-sampled discriminator time (dg-math §4)', () => {
  const A = (t: number) => Math.log(-Math.expm1(-lvpIntegratedBeta(t))) + lvpIntegratedBeta(t);
  it('maps u = 0 to τmin and u = 1 to 1, monotonically', () => {
    expect(importanceSampledLvpTime(0)).toBeCloseTo(LVP_TAU_MIN, 10);
    expect(importanceSampledLvpTime(1)).toBeCloseTo(1, 10);
    let prev = 0;
    for (let u = 0.05; u < 1; u += 0.05) {
      const t = importanceSampledLvpTime(u);
      expect(t).toBeGreaterThan(prev);
      prev = t;
    }
  });
  it('has CDF (A(τ) - A(τmin)) / Z, so its density is ∝ dA/dτ', () => {
    const Z = A(1) - A(LVP_TAU_MIN);
    for (const u of [0.1, 0.37, 0.5, 0.93]) {
      expect((A(importanceSampledLvpTime(u)) - A(LVP_TAU_MIN)) / Z).toBeCloseTo(u, 9);
    }
  });
});
