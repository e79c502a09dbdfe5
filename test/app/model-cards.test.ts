/**
 * Issue 28, finding 6: models that make noise must not look like any other. A score model that fails the
 * never-ship-noise check (an untrained one), or was stopped early, and a discriminator that barely beats
 * chance carry a warning on their cards; discriminator cards show their validation accuracy.
 */
import { describe, expect, it } from 'vitest';
import { cardWarning, WEAK_DISCRIMINATOR_ACCURACY } from '../../src/main/backend/model-registry.js';

describe('model cards warn', () => {
  it('of a score model that fails the never-ship-noise check, with its ratios, before "stopped early"', () => {
    const w = cardWarning('score', { steps: 170, cancelled: true, denoisingCheck: { passed: false, ratios: { '0.2': 2.8, '0.5': 36 } } });
    expect(w).toMatch(/does not yet denoise better than a per-pixel linear baseline \(2\.80 at t0 0\.2, 36\.00 at t0 0\.5; below 0\.9/);
    expect(w).toMatch(/would translate into noise/);
  });
  it('of a score model stopped early that passed the check, and of nothing for a finished one', () => {
    expect(cardWarning('score', { steps: 900, cancelled: true, denoisingCheck: { passed: true, ratios: {} } })).toMatch(
      /stopped early \(at step 900\)/,
    );
    expect(cardWarning('score', { steps: 900, cancelled: false, denoisingCheck: { passed: true, ratios: {} } })).toBeNull();
    expect(cardWarning('score', undefined)).toBeNull(); // an imported model without a training record
  });
  it('of a discriminator at chance, not of one above the bar', () => {
    expect(cardWarning('discriminator', { validation: { accuracy: 0.51 } })).toMatch(/validation accuracy 0\.51; 0\.5 is chance/);
    expect(cardWarning('discriminator', { validation: { accuracy: WEAK_DISCRIMINATOR_ACCURACY + 0.01 } })).toBeNull();
  });
});
