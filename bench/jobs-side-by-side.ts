/**
 * bench/jobs-side-by-side: how a translation fares while a training runs in the studio's back end (issue
 * 28's target: ≤ 2× its time alone), and what the training loses meanwhile. The bundled default
 * translates the 10 bundled samples (its default parameters, DG included) alone, then with a target-model
 * training (the Train tab's defaults: width 32, 64×64, batch 32) running on the same machine; alternating
 * rounds, median and range printed, the ratio last.
 *
 *   npx tsx bench/jobs-side-by-side.ts [rounds]
 */
import { StudioBackend } from '../src/main/backend/backend.js';
import type { JobDto } from '../src/shared/api.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobOf as jobOfBackend, untilJob } from '../test/helpers/jobs.js';
import { summarize } from './stats.js';

const median = (xs: number[]) => summarize(xs).median;
const range = (xs: number[]) => `${summarize(xs).min.toFixed(2)}–${summarize(xs).max.toFixed(2)}`;

const rounds = Number(process.argv[2] ?? 3);
const home = await mkdtemp(join(tmpdir(), 'dg-bench-jobs-'));
const backend = await StudioBackend.create({ mode: 'server', dataDir: home });
const jobOf = (id: number) => jobOfBackend(backend, id);
const until = (id: number, ok: (j: JobDto) => boolean) => untilJob(backend, id, ok, Infinity, 20);
const { sources } = (await backend.dispatch('addSamples', [])) as { sources: { id: string }[] };
const ids = sources.map((s) => s.id);
async function translateSeconds(): Promise<number> {
  const t = performance.now();
  const { jobId } = (await backend.dispatch('translate', [
    { sources: ids, params: { dgWeight: 32 }, model: null, discriminator: null },
  ])) as {
    jobId: number;
  };
  const j = await until(jobId, (x) => x.state !== 'queued' && x.state !== 'running');
  if (j.state !== 'done') throw new Error(`translation ${j.state}: ${j.error}`);
  return (performance.now() - t) / 1000;
}
/** training steps per second over `seconds` */
async function trainingRate(id: number, seconds: number): Promise<number> {
  const a = await jobOf(id);
  const t = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = await jobOf(id);
  return (b.done - a.done) / ((performance.now() - t) / 1000);
}

console.log(`jobs-side-by-side: ${ids.length} samples, the bundled default (DG w 32), ${rounds} rounds — ${new Date().toISOString()}`);
await translateSeconds(); // warm-up: sessions, caches
const alone: number[] = [];
const beside: number[] = [];
const rateAlone: number[] = [];
const rateDuring: number[] = [];
for (let r = 0; r < rounds; r++) {
  alone.push(await translateSeconds());
  const train = (await backend.dispatch('trainScoreModel', [{ targets: ids, name: `bench-${r}`, steps: 1_000_000, channels: 32 }])) as {
    jobId: number;
  };
  await until(train.jobId, (j) => j.state === 'running' && j.done >= 3);
  rateAlone.push(await trainingRate(train.jobId, 15));
  const before = await jobOf(train.jobId);
  const t = performance.now();
  beside.push(await translateSeconds());
  const after = await jobOf(train.jobId);
  rateDuring.push((after.done - before.done) / ((performance.now() - t) / 1000));
  await backend.dispatch('cancelJob', [train.jobId]);
  await until(train.jobId, (j) => j.state !== 'running');
  console.log(
    `round ${r + 1}: translate alone ${alone[r]!.toFixed(2)} s, beside the training ${beside[r]!.toFixed(2)} s; training ${rateAlone[r]!.toFixed(2)} steps/s alone, ${rateDuring[r]!.toFixed(2)} during`,
  );
}
const [a, b] = [median(alone), median(beside)];
console.log(
  `translate: alone ${a.toFixed(2)} s (${range(alone)}), beside a training ${b.toFixed(2)} s (${range(beside)}) — ratio ×${(b / a).toFixed(2)} (target ≤ 2)`,
);
console.log(`training: ${median(rateAlone).toFixed(2)} steps/s alone, ${median(rateDuring).toFixed(2)} during the translation (it pauses)`);
await backend.close();
await rm(home, { recursive: true, force: true });
