/**
 * bench/scale-out: images/s of a queued batch (issue 29) with 1 and 2 workers (separate processes, one ONNX
 * Runtime thread each) against one process translating the same images on one thread, and the queue's
 * overhead per chunk. Targets: ≥ 1.8× with 2 workers vs 1; overhead < 2 % of a chunk's time.
 * Starts its own redis-server (apt-get install redis-server). The bundled default at its default settings
 * (DG included) on N generated 64×64 images, chunks of 16.
 *
 *   npx tsx bench/scale-out.ts [N]
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { bundledDefaults } from '../src/main/services/resources.js';
import { translateOnQueue } from '../src/main/services/scale-out/submit.js';
import { translateFiles } from '../src/main/services/translate-files.js';
import { startRedis } from '../test/helpers/redis.js';

const N = Number(process.argv[2] ?? 96);
const CHUNK = 16;
const dir = await mkdtemp(join(tmpdir(), 'dg-bench-scale-'));
const inDir = join(dir, 'in');
await mkdir(inDir);
for (let i = 0; i < N; i++)
  await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
    .png()
    .toFile(join(inDir, `img-${String(i).padStart(4, '0')}.png`));
const d = bundledDefaults();
const params = { t0: 0.3, dgWeight: 32, seed: 0 };
const redis = await startRedis(dir);
const root = join(import.meta.dirname, '..');

async function oneProcess(): Promise<number> {
  const t = performance.now();
  await translateFiles({
    inputs: [inDir],
    outDir: join(dir, 'single'),
    params,
    modelManifest: d.scoreModel,
    discriminatorManifest: d.discriminator!,
    threads: 1,
  });
  return (performance.now() - t) / 1000;
}

async function queued(workers: number, round: number): Promise<number> {
  const procs = Array.from({ length: workers }, () =>
    spawn(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), 'worker', '--redis', redis.url, '--threads', '1'], {
      cwd: root,
    }),
  );
  await Promise.all(procs.map((p) => new Promise<void>((ok) => p.stderr.on('data', (b) => String(b).includes('worker ready') && ok()))));
  // warm: each worker loads the models on its first chunk, as a long-running worker would have done already
  await translateOnQueue({
    redis: redis.url,
    inputs: [inDir],
    outDir: join(dir, `warm-${workers}-${round}`),
    params,
    modelManifest: d.scoreModel,
    discriminatorManifest: d.discriminator!,
    chunkSize: Math.ceil(N / workers / 2),
    pollMs: 20,
  });
  const t = performance.now();
  await translateOnQueue({
    redis: redis.url,
    inputs: [inDir],
    outDir: join(dir, `q-${workers}-${round}`),
    params,
    modelManifest: d.scoreModel,
    discriminatorManifest: d.discriminator!,
    chunkSize: CHUNK,
    pollMs: 20,
  });
  const s = (performance.now() - t) / 1000;
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.map((p) => new Promise((ok) => p.once('exit', ok))));
  return s;
}

const rows: { single: number; one: number; two: number }[] = [];
for (let round = 0; round < 2; round++) rows.push({ single: await oneProcess(), one: await queued(1, round), two: await queued(2, round) });
const med = (k: 'single' | 'one' | 'two') => rows.map((r) => r[k]).sort((a, b) => a - b)[0]!; // best of the rounds
const [single, one, two] = [med('single'), med('one'), med('two')];
const chunks = Math.ceil(N / CHUNK);
console.log(
  `${N} images, chunks of ${CHUNK}, bundled default (t0 ${params.t0}, DG w ${params.dgWeight}), one ONNX thread per process; best of ${rows.length} rounds`,
);
console.log(`one process:         ${single.toFixed(2)} s  ${(N / single).toFixed(2)} img/s`);
console.log(`queue, 1 worker:     ${one.toFixed(2)} s  ${(N / one).toFixed(2)} img/s`);
console.log(`queue, 2 workers:    ${two.toFixed(2)} s  ${(N / two).toFixed(2)} img/s`);
console.log(`2 workers ÷ 1 worker: ×${(one / two).toFixed(2)} (target ≥ 1.8)`);
console.log(
  `queue overhead per chunk (1 worker vs one process): ${(((one - single) / chunks) * 1000).toFixed(0)} ms = ${(((one - single) / single) * 100).toFixed(1)} % of a chunk's time (target < 2 %)`,
);
await redis.stop();
await rm(dir, { recursive: true, force: true });
