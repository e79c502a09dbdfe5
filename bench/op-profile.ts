/** ORT's per-op-type kernel time for one model: what a bench prints to say where the time goes. */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { ortSpinning } from '../src/main/engine/onnx/session.js';

/**
 * Milliseconds per run by op type: each node's shortest kernel time over `runs` runs after one warm-up
 * (first-touch page faults, arena growth), summed by op type — the least disturbed picture on a shared
 * machine, where an average over a few runs moved elementwise ops by 4×; ORT's workers not spinning, as
 * the app runs.
 */
export async function opProfile(model: Uint8Array, feeds: Record<string, ortNode.Tensor>, runs = 2): Promise<Map<string, number>> {
  const tag = `dg-prof-${process.pid}-${Date.now()}`;
  const s = await ortNode.InferenceSession.create(model, {
    graphOptimizationLevel: 'all',
    enableProfiling: true,
    profileFilePrefix: join(tmpdir(), tag),
    logSeverityLevel: 3,
    extra: { session: { intra_op: { allow_spinning: ortSpinning() ? '1' : '0' } } },
  });
  await s.run(feeds);
  for (let i = 0; i < runs; i++) await s.run(feeds);
  s.endProfiling();
  await s.release();
  const file = readdirSync(tmpdir()).find((f) => f.startsWith(tag))!;
  const events = JSON.parse(readFileSync(join(tmpdir(), file), 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args: { op_name?: string };
  }[];
  rmSync(join(tmpdir(), file));
  const shortest = new Map<string, { op: string; ms: number | null }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const seen = shortest.get(e.name);
    // the first event of a node is the warm-up run's
    if (!seen) shortest.set(e.name, { op: e.args.op_name!, ms: null });
    else seen.ms = Math.min(seen.ms ?? Infinity, e.dur / 1000);
  }
  const byOp = new Map<string, number>();
  for (const { op, ms } of shortest.values()) if (ms !== null) byOp.set(op, (byOp.get(op) ?? 0) + ms);
  return byOp;
}

/** The top op types of a profile as "Conv 41.2 ms, Mul 7.0 ms, …". */
export function topOps(byOp: Map<string, number>, n = 10): string {
  return [...byOp]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([op, ms]) => `${op} ${ms.toFixed(1)} ms`)
    .join(', ');
}
