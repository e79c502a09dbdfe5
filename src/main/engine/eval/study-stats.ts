/**
 * Statistics for human studies: win rates with Wilson intervals, Bradley–Terry strengths,
 * Fleiss' κ for agreement between annotators.
 */

/** Wilson score interval for k successes in n trials (z = 1.96 for 95 %). */
export function wilsonInterval(k: number, n: number, z = 1.96): { rate: number; low: number; high: number } {
  if (n === 0) return { rate: NaN, low: 0, high: 1 };
  const p = k / n;
  const d = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / d;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return { rate: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * Bradley–Terry strengths from a win matrix wins[i][j] = times i beat j (ties count half to
 * each), by Hunter's MM algorithm; returned as log-strengths centred on 0.
 */
export function bradleyTerry(wins: number[][], iterations = 500): number[] {
  const n = wins.length;
  let p = new Array<number>(n).fill(1);
  for (let it = 0; it < iterations; it++) {
    const next = p.map((_, i) => {
      const w = wins[i]!.reduce((a, b) => a + b, 0);
      let denom = 0;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        const games = wins[i]![j]! + wins[j]![i]!;
        if (games > 0) denom += games / (p[i]! + p[j]!);
      }
      return denom > 0 ? Math.max(w, 1e-9) / denom : p[i]!;
    });
    const g = Math.exp(next.reduce((a, v) => a + Math.log(v), 0) / n);
    p = next.map((v) => v / g);
  }
  return p.map(Math.log);
}

/**
 * Fleiss' κ: counts[i][c] = annotators putting item i in category c (every item rated by the
 * same number of annotators, at least 2).
 */
export function fleissKappa(counts: number[][]): number {
  const N = counts.length;
  if (N === 0) return NaN;
  const n = counts[0]!.reduce((a, b) => a + b, 0);
  if (n < 2 || counts.some((r) => r.reduce((a, b) => a + b, 0) !== n))
    throw new Error('Fleiss κ needs the same number (≥ 2) of ratings per item');
  const k = counts[0]!.length;
  const pj = Array.from({ length: k }, (_, c) => counts.reduce((a, r) => a + r[c]!, 0) / (N * n));
  const Pi = counts.map((r) => (r.reduce((a, v) => a + v * v, 0) - n) / (n * (n - 1)));
  const Pbar = Pi.reduce((a, b) => a + b, 0) / N;
  const Pe = pj.reduce((a, v) => a + v * v, 0);
  return Pe === 1 ? 1 : (Pbar - Pe) / (1 - Pe);
}
