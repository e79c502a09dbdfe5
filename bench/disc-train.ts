/**
 * bench/disc-train: discriminator training throughput (images/s) and wall time to a
 * validation accuracy on the emoji pair (Twemoji = fake, Noto = real), ORT CPU, for the
 * default architecture and cheaper variants, side by side in one process.
 *
 *   npx tsx tools/prepare-emoji.ts   # once: data/emoji
 *   npx tsx bench/disc-train.ts [seconds per config, default 90]
 *
 * Until the trained emoji score model is bundled, fakes are the source images alone (no
 * unguided translations), which makes the task easier than the real one.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readImage } from '../src/main/engine/io/image-io.js';
import { buildDiscriminatorNet, DEFAULT_ARCH, type ConvEncoderArch } from '../src/main/engine/nn/discriminator-net.js';
import { DiscriminatorTrainer } from '../src/main/engine/train/discriminator-trainer.js';

const DATA = join(import.meta.dirname, '..', 'data', 'emoji');
const spec = { channels: 3 as const, height: 64, width: 64, valueRange: [-1, 1] as const };

async function load(set: string, split: string, limit: number): Promise<Float32Array[]> {
  const dir = join(DATA, set, split);
  const names = (await readdir(dir)).sort().slice(0, limit);
  return Promise.all(names.map((n) => readImage(join(dir, n), spec)));
}

const CONFIGS: [string, Partial<ConvEncoderArch>][] = [
  ['full-resolution 32-64-64-128 @64', { channels: [32, 64, 64, 128], downsample: 1 }],
  ['small 16-32-32-64 @64', { channels: [16, 32, 32, 64], downsample: 1 }],
  ['default: 32-64-64 @32 (input pooled ×2)', {}],
];

export async function discTrain(seconds = 90, target = 0.8) {
  if (!existsSync(DATA)) {
    console.log('disc-train: skipped — no data/emoji; run "npx tsx tools/prepare-emoji.ts" first');
    return [];
  }
  const [real, fake, valReal, valFake] = await Promise.all([
    load('google', 'train', 3000),
    load('twitter', 'train', 3000),
    load('google', 'test', 200),
    load('twitter', 'test', 200),
  ]);
  const rows = [];
  for (const [name, over] of CONFIGS) {
    const arch: ConvEncoderArch = { ...DEFAULT_ARCH, ...over, attentionAt: [8] };
    const net = buildDiscriminatorNet(arch, 1);
    const trainer = await DiscriminatorTrainer.create(net, [3, 64, 64], {
      loss: 'bce',
      batchSize: 32,
      lr: 2e-3,
      tauRange: [1e-5, 0.7],
      timeSampling: 'importance',
      seed: 1,
      hflip: true,
    });
    const t0 = performance.now();
    let reachedAt: number | null = null;
    let acc = { accuracy: 0, bands: [] as { accuracy: number }[] };
    while ((performance.now() - t0) / 1000 < seconds) {
      for (let i = 0; i < 100; i++) await trainer.trainStep(real, fake);
      acc = await trainer.evaluate(valReal.slice(0, 100), valFake.slice(0, 100), 4);
      if (reachedAt === null && acc.accuracy >= target) reachedAt = (performance.now() - t0) / 1000;
    }
    const wall = (performance.now() - t0) / 1000;
    const ips = (trainer.step * 32) / wall;
    console.log(
      `${name}: ${(net.paramCount / 1e6).toFixed(2)}M params, ${ips.toFixed(1)} images/s (incl. validation), ${trainer.step} steps in ${wall.toFixed(0)} s, ` +
        `val accuracy ${acc.accuracy.toFixed(3)} [by τ band: ${acc.bands.map((b) => b.accuracy.toFixed(2)).join(' ')}], ` +
        `${reachedAt === null ? `did not reach ${target}` : `reached ${target} after ${reachedAt.toFixed(0)} s`}`,
    );
    rows.push({ name, ips, accuracy: acc.accuracy, reachedAt });
    await trainer.dispose();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) await discTrain(Number(process.argv[2] ?? 90));
