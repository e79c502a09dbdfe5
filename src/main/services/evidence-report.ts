/**
 * The evidence report in words and tables: paired differences with their standard errors, the
 * SDEdit frontier and each DG point's gap below it, the design comparison, the results table and
 * the reading written from the numbers (docs/results.md). Pure: runEvidence (evidence.ts) supplies
 * the numbers.
 */
import type { SweepRow } from '../../shared/api.js';

/** Per-image paired distances of one setting, in source order. */
export interface PairedDistances {
  t0: number;
  w: number;
  l2Truth: number[];
  l2Source: number[];
}

/** Mean and standard error of paired differences b − a. */
export function pairedDifference(a: number[], b: number[]): { mean: number; se: number; n: number } {
  if (a.length !== b.length || a.length === 0) throw new Error('paired difference needs two equal, non-empty lists');
  const d = a.map((v, i) => b[i]! - v);
  const n = d.length;
  const mean = d.reduce((s, v) => s + v, 0) / n;
  const variance = n > 1 ? d.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, se: Math.sqrt(variance / n), n };
}

/**
 * The plain-SDEdit curve's realism at a given faithfulness: linear interpolation between the
 * SDEdit points (sorted by faithfulness); null outside their range (no extrapolation).
 */
export function sdeditRealismAt(curve: { faithfulness: number; realism: number }[], faithfulness: number): number | null {
  const pts = [...curve].sort((a, b) => a.faithfulness - b.faithfulness);
  for (let i = 0; i + 1 < pts.length; i++) {
    const [a, b] = [pts[i]!, pts[i + 1]!];
    if (faithfulness >= a.faithfulness && faithfulness <= b.faithfulness) {
      const f = b.faithfulness === a.faithfulness ? 0 : (faithfulness - a.faithfulness) / (b.faithfulness - a.faithfulness);
      return a.realism + f * (b.realism - a.realism);
    }
  }
  return pts.length === 1 && pts[0]!.faithfulness === faithfulness ? pts[0]!.realism : null;
}

/**
 * How far each DG point lies below the SDEdit curve (realism metric, lower is better): its
 * realism minus SDEdit's at the same L2 to the source. Negative: DG lifts the curve there.
 */
export function frontierGaps(rows: SweepRow[], metric: 'swd' | 'fd'): { t0: number; w: number; gap: number | null }[] {
  const curve = rows.filter((r) => r.w === 0).map((r) => ({ faithfulness: r.l2Source, realism: r[metric] }));
  return rows
    .filter((r) => r.w > 0)
    .map((r) => {
      const sdedit = sdeditRealismAt(curve, r.l2Source);
      return { t0: r.t0, w: r.w, gap: sdedit === null ? null : r[metric] - sdedit };
    });
}

/** "smallest–largest" of the values (nulls left out), each as f3 writes it; "–" when there are none. */
export function spanText(values: (number | null)[]): string {
  const v = values.filter((x): x is number => x !== null);
  return v.length ? `${f3(Math.min(...v))}–${f3(Math.max(...v))}` : '–';
}

export const f3 = (v: number | null) => (v === null || !Number.isFinite(v) ? '–' : Number(v.toPrecision(3)).toString());
export const signed = (v: number) => (v >= 0 ? '+' : '−') + f3(Math.abs(v));

/**
 * The design comparison: for each discriminator and t0, the DG weight that lies furthest below
 * the SDEdit frontier by FD (realism at equal L2 to the source), with its FD and SWD gaps as
 * fractions of SDEdit's value there (−0.2: 20 % lower than SDEdit at the same faithfulness), and
 * the mean FD gap over the t0s in `band` — the number the designs are ranked by.
 */
export function designComparison(
  sdedit: SweepRow[],
  designs: { name: string; rows: SweepRow[] }[],
  band: [number, number] = [0.4, 0.6],
): { table: string; ranking: { name: string; meanFdGap: number | null }[]; band: [number, number] } {
  const curveOf = (metric: 'swd' | 'fd') => sdedit.map((r) => ({ faithfulness: r.l2Source, realism: r[metric] }));
  const curves = { swd: curveOf('swd'), fd: curveOf('fd') };
  const relGap = (r: SweepRow, metric: 'swd' | 'fd') => {
    const s = sdeditRealismAt(curves[metric], r.l2Source);
    return s === null || s === 0 ? null : (r[metric] - s) / s;
  };
  const pct = (v: number | null) => (v === null ? '–' : `${v >= 0 ? '+' : '−'}${Math.abs(100 * v).toFixed(1)} %`);
  const lines = ['| design | t0 | best w (by FD gap) | FD gap | SWD gap | L2 to source (SDEdit → DG) |', '|' + ' --- |'.repeat(6)];
  const ranking: { name: string; meanFdGap: number | null }[] = [];
  for (const d of designs) {
    const inBand: number[] = [];
    for (const t0 of [...new Set(d.rows.map((r) => r.t0))].sort((a, b) => a - b)) {
      const scored = d.rows.filter((r) => r.t0 === t0 && r.w > 0).map((r) => ({ r, fd: relGap(r, 'fd') }));
      const valid = scored.filter((x) => x.fd !== null);
      const base = sdedit.find((r) => r.t0 === t0);
      if (valid.length === 0) {
        lines.push(`| ${d.name} | ${t0} | – | outside the SDEdit curve | – | – |`);
        continue;
      }
      const best = valid.reduce((a, b) => (b.fd! < a.fd! ? b : a));
      if (t0 >= band[0] && t0 <= band[1]) inBand.push(best.fd!);
      lines.push(
        `| ${d.name} | ${t0} | ${best.r.w} | ${pct(best.fd)} | ${pct(relGap(best.r, 'swd'))} | ${base ? f3(base.l2Source) : '–'} → ${f3(best.r.l2Source)} |`,
      );
    }
    ranking.push({ name: d.name, meanFdGap: inBand.length ? inBand.reduce((a, b) => a + b, 0) / inBand.length : null });
  }
  return { table: lines.join('\n'), ranking, band };
}

/** The results table: one row per setting, with the paired change of L2 to the truth against SDEdit at the same t0. */
export function resultsTable(rows: SweepRow[], paired: PairedDistances[]): string {
  const head =
    '| t0 | w | SWD ↓ | FD ↓ | KID ↓ | roughness ÷ targets (1 = as smooth) | L2 to source ↓ | SSIM to source ↑ | L2 to truth ↓ | Δ L2 to truth vs SDEdit (± s.e.) | SSIM to truth ↑ |';
  const lines = [head, '|' + ' --- |'.repeat(11)];
  for (const r of rows) {
    const base = paired.find((p) => p.t0 === r.t0 && p.w === 0);
    const mine = paired.find((p) => p.t0 === r.t0 && p.w === r.w);
    let delta = '–';
    if (r.w > 0 && base && mine && base.l2Truth.length) {
      const d = pairedDifference(base.l2Truth, mine.l2Truth);
      delta = `${signed(d.mean)} ± ${f3(d.se)}`;
    }
    lines.push(
      `| ${r.t0} | ${r.w} | ${f3(r.swd)} | ${f3(r.fd)} | ${f3(r.kid)} | ${f3(r.roughness)} | ${f3(r.l2Source)} | ${f3(r.ssimSource)} | ${f3(r.l2Truth)} | ${delta} | ${f3(r.ssimTruth)} |`,
    );
  }
  return lines.join('\n');
}

/**
 * The reading, written from the numbers: at each t0, the DG weight with the best realism
 * against SDEdit, whether the change is above the seed-noise floor, what it costs in
 * faithfulness, and whether DG points lie below the SDEdit frontier.
 */
/** The realism of a set of real target images measured as a translation is (SWD, FD). */
export interface RealismLevel {
  swd: number;
  fd: number;
  images: number;
}

export function reading(
  rows: SweepRow[],
  paired: PairedDistances[],
  noise: { swd: number; fd: number },
  /** draws of real target images of other subjects (empty: none measured) */
  others: RealismLevel[] = [],
  /** the sources themselves, untranslated */
  untranslated: RealismLevel | null = null,
): string[] {
  const out: string[] = [];
  const t0s = [...new Set(rows.map((r) => r.t0))].sort((a, b) => a - b);
  for (const t0 of t0s) {
    const base = rows.find((r) => r.t0 === t0 && r.w === 0);
    const dg = rows.filter((r) => r.t0 === t0 && r.w > 0);
    if (!base || dg.length === 0) continue;
    const best = dg.reduce((a, b) => (b.swd < a.swd ? b : a));
    const dSwd = best.swd - base.swd;
    const dFd = best.fd - base.fd;
    const verdict =
      dSwd < -noise.swd && dFd < 0
        ? 'more realistic (SWD and FD both lower, SWD beyond the seed-noise floor)'
        : dSwd < -noise.swd
          ? 'lower SWD beyond the noise floor, but FD does not agree'
          : Math.abs(dSwd) <= noise.swd
            ? 'no realism change beyond the seed-noise floor'
            : 'less realistic by SWD';
    let truth = '';
    const pb = paired.find((p) => p.t0 === t0 && p.w === 0);
    const pd = paired.find((p) => p.t0 === t0 && p.w === best.w);
    if (pb && pd && pb.l2Truth.length) {
      const d = pairedDifference(pb.l2Truth, pd.l2Truth);
      const sig = Math.abs(d.mean) > 2 * d.se ? (d.mean < 0 ? 'closer to' : 'further from') : 'no clear change in distance to';
      truth = `; ${sig} the true target (Δ L2 ${signed(d.mean)} ± ${f3(d.se)}, n = ${d.n})`;
    }
    out.push(
      `- **t0 = ${t0}**: best DG weight by SWD is w = ${best.w}: SWD ${f3(base.swd)} → ${f3(best.swd)} (${signed(dSwd)}), ` +
        `FD ${f3(base.fd)} → ${f3(best.fd)} (${signed(dFd)}), L2 to source ${f3(base.l2Source)} → ${f3(best.l2Source)} — ${verdict}${truth}.`,
    );
  }
  for (const metric of ['swd', 'fd'] as const) {
    const gaps = frontierGaps(rows, metric).filter((g) => g.gap !== null);
    const floor = noise[metric];
    const below = gaps.filter((g) => g.gap! < -floor);
    const above = gaps.filter((g) => g.gap! > floor);
    const best = below.length ? below.reduce((a, b) => (b.gap! < a.gap! ? b : a)) : null;
    if (gaps.length)
      out.push(
        `- Against the SDEdit frontier (${metric.toUpperCase()} at equal L2 to the source, interpolated between t0 values): ` +
          `${below.length} of ${gaps.length} DG settings lie below it by more than the noise floor (${f3(floor)}), ${above.length} above it` +
          (best ? ` (best: t0 = ${best.t0}, w = ${best.w})` : '') +
          '.',
      );
  }
  if (others.length) out.push(othersReading(rows, others));
  if (untranslated) {
    const [bySwd, byFd] = [rows.filter((r) => r.swd > untranslated.swd), rows.filter((r) => r.fd > untranslated.fd)];
    out.push(
      `- The ${untranslated.images} sources, untranslated, score SWD ${f3(untranslated.swd)} and FD ${f3(untranslated.fd)}: ` +
        `${bySwd.length} of ${rows.length} settings have a higher SWD (further from the targets' local statistics than doing nothing)` +
        `${bySwd.length ? ` — ${bySwd.map((r) => `t0 ${r.t0} w ${r.w}`).join(', ')}` : ''}; ${byFd.length} of ${rows.length} a higher FD.`,
    );
  }
  return out;
}

/**
 * Where the settings lie against real target images of other subjects: below them by FD means closer to the
 * reference than real images are — by sharing its subjects, which FD on these features rewards; above them by SWD
 * means less real in local texture.
 */
function othersReading(rows: SweepRow[], others: RealismLevel[]): string {
  const fdLow = Math.min(...others.map((o) => o.fd));
  const swdHigh = Math.max(...others.map((o) => o.swd));
  const fdBelow = rows.filter((r) => r.fd < fdLow);
  const swdAbove = rows.filter((r) => r.swd > swdHigh);
  const span = (k: 'swd' | 'fd') => spanText(others.map((o) => o[k]));
  return (
    `- Real target images of other subjects (${others.length} draws of ${others[0]!.images}) score SWD ${span('swd')} and FD ${span('fd')}: ` +
    `${fdBelow.length} of ${rows.length} settings have a lower FD than every draw — closer to the reference than real images of other subjects, ` +
    `which comes from sharing its subjects, not from being more real than real; ${swdAbove.length} of ${rows.length} have a higher SWD than every draw ` +
    `(less real in local texture by that much).`
  );
}
