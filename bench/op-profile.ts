/** ORT's per-op-type kernel time for one model: what a bench prints to say where the time goes. */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';

/** Milliseconds per run by op type (kernel time, averaged over `runs` runs after one warm-up). */
export async function opProfile(model: Uint8Array, feeds: Record<string, ortNode.Tensor>, runs = 2): Promise<Map<string, number>> {
  const tag = `dg-prof-${process.pid}-${Date.now()}`;
  const s = await ortNode.InferenceSession.create(model, {
    graphOptimizationLevel: 'all',
    enableProfiling: true,
    profileFilePrefix: join(tmpdir(), tag),
    logSeverityLevel: 3,
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
  const byOp = new Map<string, number>();
  for (const e of events)
    if (e.cat === 'Node' && e.name.endsWith('_kernel_time'))
      byOp.set(e.args.op_name!, (byOp.get(e.args.op_name!) ?? 0) + e.dur / 1000 / (runs + 1));
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
