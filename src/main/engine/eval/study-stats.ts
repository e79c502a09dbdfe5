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

/** One pairwise judgement: the two settings shown (indices) and the choice. */
export interface PairJudgement {
  a: number;
  b: number;
  choice: 'a' | 'b' | 'tie' | string;
}

/** The win matrix of k settings, wins[i][j] = times i was preferred to j, a tie counting half to each. */
export function preferenceMatrix(judgements: PairJudgement[], k: number): number[][] {
  const wins = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (const { a, b, choice } of judgements) {
    if (choice === 'a') wins[a]![b]! += 1;
    else if (choice === 'b') wins[b]![a]! += 1;
    else {
      wins[a]![b]! += 0.5;
      wins[b]![a]! += 0.5;
    }
  }
  return wins;
}

/**
 * Fleiss' κ of the choices (a, b, tie) over items judged at least twice, each item's first r
 * judgements where r is the fewest any such item has; null with fewer than two such items.
 */
export function itemAgreement(judgements: { item: number; choice: string }[]): number | null {
  const byItem = new Map<number, string[]>();
  for (const j of judgements) byItem.set(j.item, [...(byItem.get(j.item) ?? []), j.choice]);
  const judged = [...byItem.values()].filter((v) => v.length >= 2);
  const raters = judged.length ? Math.min(...judged.map((v) => v.length)) : 0;
  const table = judged.map((v) => ['a', 'b', 'tie'].map((c) => v.slice(0, raters).filter((x) => x === c).length));
  return table.length >= 2 && raters >= 2 ? fleissKappa(table) : null;
}
