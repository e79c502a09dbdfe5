/**
 * Scale-out on a real Redis (issue 29): three worker processes and a submitter share 300 images; one worker is
 * SIGKILLed mid-chunk, the submitter is SIGKILLed and resumed, Redis is restarted mid-run, and hostile or
 * unrunnable messages sit in the queue — and every image ends up exactly once in the gallery and the output
 * folder, pixel-identical to a single-process run with the same seeds and thread count.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StudioBackend } from '../../src/main/backend/backend.js';
import { Gallery } from '../../src/main/services/gallery.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { QUEUE_NAME, TRANSLATE_CHUNK } from '../../src/main/services/scale-out/protocol.js';
import { redisConnection } from '../../src/main/services/scale-out/redis.js';
import { translateFiles } from '../../src/main/services/translate-files.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { untilJob } from '../helpers/jobs.js';
import { tempDir } from '../helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');
const N = 300;
const PARAMS = { steps: 2, t0: 0.3, dgWeight: 0, seed: 11, batchSize: 4 };

/** The CLI as a child process; its output collected, its exit awaited. */
function cli(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), ...args], { cwd: root });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (out.stdout += String(d)));
  child.stderr.on('data', (d) => (out.stderr += String(d)));
  const exit = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return { child, out, exit };
}

const until = async (ok: () => boolean | Promise<boolean>, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('scale-out: BullMQ on a real Redis', async () => {
  const dir = await tempDir();
  const inDir = join(dir, 'in');
  const outDir = join(dir, 'out');
  const refDir = join(dir, 'ref');
  const galleryDir = join(dir, 'gallery');
  let redis: RedisServer;
  const workers: ReturnType<typeof cli>[] = [];

  beforeAll(async () => {
    await mkdir(inDir, { recursive: true });
    for (let i = 0; i < N; i++) {
      const c = { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 };
      await sharp({ create: { width: 64, height: 64, channels: 3, background: c } })
        .composite([
          {
            input: { create: { width: 24, height: 24, channels: 3, background: { r: 255 - c.r, g: c.b, b: c.g } } },
            top: 8 + (i % 30),
            left: 20,
          },
        ])
        .png()
        .toFile(join(inDir, `img-${String(i).padStart(3, '0')}.png`));
    }
    redis = await startRedis(dir);
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    await redis?.stop();
  });

  it('every image exactly once, pixel-identical to one machine, through a killed worker, a killed submitter, a Redis restart and hostile messages', async () => {
    // the single-machine reference: same seeds, one thread
    await translateFiles({ inputs: [inDir], outDir: refDir, params: PARAMS, modelManifest: bundledDefaults().scoreModel, threads: 1 });

    // hostile and unrunnable messages first in the queue: each fails on its own, the workers go on
    const queue = new Queue(QUEUE_NAME, { connection: redisConnection({ redis: redis.url }) });
    const junk = await queue.add(TRANSLATE_CHUNK, { version: 1, run: 'zz', items: 'rm -rf /' });
    const unknownKind = await queue.add('run-shell', { cmd: 'id' });
    const unknownModel = await queue.add(TRANSLATE_CHUNK, {
      version: 1,
      run: '0123456789abcdef',
      chunk: 0,
      firstIndex: 0,
      params: PARAMS,
      model: { name: 'a model nobody has', digest: 'f'.repeat(64) },
      discriminator: null,
      items: [{ name: 'x.png', data: (await readFile(join(inDir, 'img-000.png'))).toString('base64') }],
    });

    for (let i = 0; i < 3; i++) workers.push(cli(['worker', '--redis', redis.url, '--threads', '1', '--lock-seconds', '3']));
    await until(() => workers.every((w) => w.out.stderr.includes('worker ready')), 60_000, 'three workers');
    const args = [
      'translate',
      inDir,
      '--queue',
      redis.url,
      '--out',
      outDir,
      '--gallery',
      galleryDir,
      '--chunk-size',
      '12',
      '--no-discriminator',
      '--steps',
      '2',
      '--t0',
      '0.3',
      '--seed',
      '11',
      '--batch-size',
      '4',
      '--json',
      '--no-progress',
    ];
    const first = cli(args);
    const results = () => first.out.stdout.split('\n').filter(Boolean).length;
    // a worker dies mid-chunk, once results flow
    await until(() => results() >= 12, 120_000, 'the first results');
    workers[0]!.child.kill('SIGKILL');
    // then the submitter dies
    await until(() => results() >= 100, 120_000, '100 results');
    first.child.kill('SIGKILL');
    await first.exit;
    const runId = Number(/gallery run (\d+)/.exec(first.out.stderr)?.[1]);
    expect(runId).toBeGreaterThan(0);

    // resumed; Redis restarts under it
    const second = cli([...args.slice(0, 2), '--resume-run', String(runId), ...args.slice(2)]);
    await until(() => second.out.stdout.split('\n').filter(Boolean).length >= 20, 120_000, 'results after the resume');
    await redis.restart();
    expect(await second.exit).toBe(0);
    expect(second.out.stderr).toMatch(/done: \d+ written/);
    // every chunk came back whole the first time it was seen finished (none had to be translated again)
    expect(first.out.stderr + second.out.stderr).not.toMatch(/came back without/);

    // exactly once: the gallery run has each source once, the folder each output once (no "-1" copies)
    const g = await Gallery.open(galleryDir);
    try {
      const rows = g.db.prepare('SELECT source_path, error FROM outputs WHERE run_id = ?').all(runId) as {
        source_path: string;
        error: string | null;
      }[];
      expect(rows.filter((r) => r.error)).toEqual([]);
      expect(rows).toHaveLength(N);
      expect(new Set(rows.map((r) => r.source_path)).size).toBe(N);
    } finally {
      g.db.close();
    }
    const pngs = (await readdir(outDir)).filter((n) => n.endsWith('.png')).sort();
    const refs = (await readdir(refDir)).filter((n) => n.endsWith('.png')).sort();
    expect(pngs).toHaveLength(N);
    expect(pngs).toEqual(refs);
    for (const name of pngs) {
      const [a, b] = await Promise.all([outDir, refDir].map((d) => sharp(join(d, name)).raw().toBuffer()));
      expect([name, a!.equals(b!)]).toEqual([name, true]);
    }

    // the hostile messages failed with their reasons; the two live workers are still serving
    const reasons = await Promise.all([junk, unknownKind, unknownModel].map(async (j) => (await queue.getJob(j.id!))?.failedReason));
    expect(reasons[0]).toMatch(/not a valid translate chunk/);
    expect(reasons[1]).toMatch(/unknown job kind "run-shell"/);
    expect(reasons[2]).toMatch(/this worker has no model "a model nobody has"/);
    expect(workers.slice(1).every((w) => w.child.exitCode === null)).toBe(true);
    await queue.close();
  }, 600_000);

  it('the studio sends its translations to the workers when its settings name their Redis', async () => {
    const studio = await StudioBackend.create({ mode: 'server', dataDir: join(dir, 'studio') });
    try {
      await studio.dispatch('setSettings', [{ queue: redis.url }]);
      const { sources } = (await studio.dispatch('addSamples', [])) as { sources: { id: string; name: string }[] };
      const { jobId } = (await studio.dispatch('translate', [
        { sources: sources.map((x) => x.id), params: { steps: 2, dgWeight: 0 } },
      ])) as {
        jobId: number;
      };
      const job = await untilJob(studio, jobId);
      expect(job.state).toBe('done');
      expect(job.message).toMatch(/worker\(s\)/);
      const items = (await studio.dispatch('gallerySearch', [{}])) as { sourceName: string | null }[];
      // named by the users' file names, not the inbox's digests
      expect(items.map((i) => i.sourceName).sort()).toEqual(sources.map((x) => x.name).sort());
      await expect(studio.dispatch('setSettings', [{ queue: 'http://not-redis' }])).rejects.toThrow(/Redis URL/);
    } finally {
      await studio.close();
    }
  }, 120_000);
});
