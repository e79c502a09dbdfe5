/**
 * bench/dg-end-to-end: the cost of DG on whole CLI runs, not from component timings. Plain SDEdit and
 * DG runs alternate (plain, DG, plain, DG, …) so drift on a shared machine hits both alike; each is a
 * fresh `dg-studio translate` process on the same images, timed from spawn to exit. Done twice: with
 * ORT's worker threads spinning between runs (ORT's default) and without (DG Studio's default, see
 * engine/onnx/session.ts), because a guided sampler alternates two sessions.
 *
 *   npx tsx bench/dg-end-to-end.ts --model .cache/unet-bench --discriminator tools/pretrained/twemoji-vs-noto-disc \
 *     --images data/emoji/twitter/test --count 16 --t0 0.5 --steps 50 --sampler ddim --dg-weight 1 --rounds 2
 *   npx tsx bench/dg-end-to-end.ts --model resources/models/noto-emoji-unet --discriminator resources/models/noto-emoji-dg \
 *     --images data/emoji/twitter/test --count 138 --rounds 3     # the bundled default as users get it
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { positiveInt } from '../src/main/cli/options.js';
import { summarize } from './stats.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');

interface Opts {
  model: string;
  discriminator: string;
  images: string;
  count: number;
  t0?: number;
  steps?: number;
  sampler?: string;
  dgWeight?: number;
  rounds: number;
}

async function timedRun(args: string[], spinning: boolean): Promise<number> {
  const t = performance.now();
  await run(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), ...args], {
    cwd: root,
    env: { ...process.env, DG_STUDIO_ORT_SPINNING: spinning ? '1' : '0' },
    maxBuffer: 1 << 24,
  });
  return (performance.now() - t) / 1000;
}

export async function dgEndToEnd(o: Opts) {
  const dir = await mkdtemp(join(tmpdir(), 'dg-e2e-'));
  try {
    const inputs = join(dir, 'in');
    await (await import('node:fs/promises')).mkdir(inputs);
    const names = (await readdir(o.images))
      .filter((f) => f.endsWith('.png'))
      .sort()
      .slice(0, o.count);
    for (const n of names) await symlink(resolve(o.images, n), join(inputs, n));
    // a setting not given is the CLI's own: the model's recommended t0, the default sampler and steps
    const given = (flag: string, v: number | string | undefined) => (v === undefined ? [] : [flag, String(v)]);
    const common = [
      'translate',
      inputs,
      '--model',
      o.model,
      ...given('--t0', o.t0),
      ...given('--steps', o.steps),
      ...given('--sampler', o.sampler),
      '--no-gallery',
      '--no-progress',
    ];
    const plain = [...common, '--no-discriminator', '--out', join(dir, 'plain')];
    const dg = [...common, '--discriminator', o.discriminator, ...given('--dg-weight', o.dgWeight), '--out', join(dir, 'dg')];
    const rows: string[] = [];
    for (const spinning of [true, false]) {
      const p: number[] = [];
      const d: number[] = [];
      for (let r = 0; r < o.rounds; r++) {
        p.push(await timedRun(plain, spinning));
        d.push(await timedRun(dg, spinning));
      }
      const [sp, sd] = [summarize(p), summarize(d)];
      const line = `ORT spinning ${spinning ? 'on ' : 'off'}: plain ${p.map((v) => v.toFixed(1)).join(' / ')} s, DG ${d.map((v) => v.toFixed(1)).join(' / ')} s — DG ÷ plain ×${(sd.median / sp.median).toFixed(3)}`;
      console.log(line);
      rows.push(line);
    }
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const o = new Command('dg-end-to-end')
    .requiredOption('--model <manifest>', 'score model (folder or manifest)')
    .requiredOption('--discriminator <manifest>', 'discriminator (folder or manifest)')
    .requiredOption('--images <dir>', 'folder of source images')
    .option('--count <n>', 'images per run', positiveInt('--count'), 16)
    .option('--t0 <t>', "SDEdit start (default: the model's recommended t0)", Number)
    .option('--steps <n>', "steps (default: the CLI's)", positiveInt('--steps'))
    .option('--sampler <name>', "sampler (default: the CLI's)")
    .option('--dg-weight <w>', "DG weight (default: the discriminator's recommended weight)", Number)
    .option('--rounds <n>', 'runs of each kind per setting', positiveInt('--rounds'), 2)
    .parse()
    .opts<Opts>();
  console.log(
    `dg-end-to-end: ${o.count} images, sampler ${o.sampler ?? 'default'}, steps ${o.steps ?? 'default'}, t0 ${o.t0 ?? 'recommended'}, w ${o.dgWeight ?? 'recommended'}, ${o.rounds} alternating rounds — ${new Date().toISOString()}`,
  );
  await dgEndToEnd(o);
}
