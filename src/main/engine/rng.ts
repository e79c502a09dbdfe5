/**
 * Seeded noise. The generator is always passed in, never global, so a run with the same
 * seed and parameters on the same machine replays bit for bit (Mersenne Twister from
 * pure-rand, Gaussian pairs by Box–Muller).
 */
import { mersenne } from 'pure-rand/generator/mersenne';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

export const MAX_SEED = 2 ** 32 - 1;

export class Rng {
  private readonly gen: RandomGenerator;
  private spare: number | null = null;

  constructor(readonly seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
      throw new Error(`seed must be an integer from 0 to ${MAX_SEED}, got ${seed}`);
    }
    this.gen = mersenne(seed | 0);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return uniformFloat64(this.gen);
  }

  /** Standard normal, Box–Muller with the second value of each pair kept. */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  fillNormal(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal();
    return out;
  }
}

/**
 * One generator per batch item, seeded `seed + i` (A1111 habit): an image's noise does
 * not depend on the batch it ran in.
 */
export class BatchRng {
  readonly items: Rng[];
  constructor(seeds: number[]) {
    this.items = seeds.map((s) => new Rng(s));
  }

  static consecutive(seed: number, count: number): BatchRng {
    return new BatchRng(Array.from({ length: count }, (_, i) => (seed + i) % (MAX_SEED + 1)));
  }

  /** Gaussian noise for a batch tensor whose first axis is the batch. */
  normal(shape: readonly number[]): Float32Array {
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const per = out.length / this.items.length;
    this.items.forEach((rng, b) => rng.fillNormal(out.subarray(b * per, (b + 1) * per)));
    return out;
  }
}

/** `count` of `items` drawn without replacement (a partial Fisher–Yates shuffle), in draw order. */
export function drawWithoutReplacement<T>(items: readonly T[], count: number, rng: Rng): T[] {
  const pool = items.slice();
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng.uniform() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}
