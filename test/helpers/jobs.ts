/**
 * Waiting on a back end's jobs from tests and benches (no vitest imports: bench scripts use it too).
 */
import type { JobDto } from '../../src/shared/api.js';

interface Dispatcher {
  dispatch(method: string, args: unknown[]): Promise<unknown>;
}

/** The job `id` as listJobs shows it now. */
export async function jobOf(b: Dispatcher, id: number): Promise<JobDto> {
  return ((await b.dispatch('listJobs', [])) as JobDto[]).find((j) => j.id === id)!;
}

const settled = (j: JobDto) => j.state !== 'queued' && j.state !== 'running';

/** Poll job `id` until `ok` (default: it has finished, whatever its outcome), or `ms` have passed: the job as last seen. */
export async function untilJob(
  b: Dispatcher,
  id: number,
  ok: (j: JobDto) => boolean = settled,
  ms = Infinity,
  pollMs = 50,
): Promise<JobDto> {
  const end = Date.now() + ms;
  for (;;) {
    const j = await jobOf(b, id);
    if (ok(j) || Date.now() > end) return j;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
