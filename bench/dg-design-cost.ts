/**
 * bench/dg-design-cost: what a discriminator design costs to guide with, against what guidance rides on — the
 * bundled U-Net's forward pass (issue 26: DG should cost ≤ 15 % of the U-Net's evaluation). Random weights (a
 * design's cost does not depend on its training); the guidance graph (forward + ∇x log r) and the U-Net's forward
 * alternate in one process at the same batch, so drift on a shared machine hits both alike. A one-evaluation-per-
 * step sampler (the default DPM-Solver++(2M) SDE) then costs about 1 + ratio per step with DG.
 *
 *   npx tsx bench/dg-design-cost.ts [--batch 4] [--reps 15]
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { buildGuidanceModel } from '../src/main/engine/models/onnx-critic.js';
import { buildDiscriminatorNet, DEFAULT_ARCH, type DiscriminatorArch } from '../src/main/engine/nn/discriminator-net.js';
import { serializeModel } from '../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../src/main/engine/onnx/session.js';
import { positiveInt } from '../src/main/cli/options.js';
import { fmt, summarize } from './stats.js';

const UNET = join(import.meta.dirname, '..', 'resources', 'models', 'noto-emoji-unet', 'model.onnx');
const bundled: DiscriminatorArch = { ...DEFAULT_ARCH, inChannels: 3, resolution: 64, downsample: 1, classes: 0 };
const DESIGNS: [string, DiscriminatorArch][] = [
  ['the bundled design (32-64-64 ch at 64×64, attention at 8)', bundled],
  ['the same, pooled 2× first (a 32×32 view)', { ...bundled, downsample: 2 }],
  ['the same, pooled 4× first (a 16×16 view)', { ...bundled, downsample: 4 }],
  ['32-64 ch, pooled 2×, no attention', { ...bundled, channels: [32, 64], attentionAt: [], downsample: 2 }],
  ['16-32 ch, pooled 2×, no attention', { ...bundled, channels: [16, 32], attentionAt: [], downsample: 2 }],
];

const o = new Command()
  .option('--batch <n>', 'images per call', positiveInt('--batch'), 4)
  .option('--reps <n>', 'timed runs of each', positiveInt('--reps'), 15)
  .parse()
  .opts<{ batch: number; reps: number }>();
const n = o.batch;
const x = new ort.Tensor(
  'float32',
  new Float32Array(n * 3 * 64 * 64).map((_, i) => Math.sin(i)),
  [n, 3, 64, 64],
);
const tau = new ort.Tensor(
  'float32',
  Float32Array.from({ length: n }, (_, i) => 0.05 + 0.05 * i),
  [n],
);
const step = new ort.Tensor(
  'int64',
  BigInt64Array.from({ length: n }, (_, i) => BigInt(100 + 50 * i)),
  [n],
);
const unet = await createSession(UNET, 'the bundled U-Net');
console.log(`batch ${n}, ${o.reps} runs each, alternating with the bundled U-Net's forward; ${new Date().toISOString()}`);
console.log('| design | params | U-Net forward | guidance (forward + ∇x) | guidance ÷ U-Net |');
console.log('|---|---|---|---|---|');
for (const [name, arch] of DESIGNS) {
  const net = buildDiscriminatorNet(arch, 1);
  const guide = await createSession(serializeModel(buildGuidanceModel(net.model, { x: 'x', output: 'logit' }, 'logit')), name);
  const tu: number[] = [];
  const tg: number[] = [];
  for (let r = 0; r <= o.reps; r++) {
    let t0 = performance.now();
    await unet.session.run({ x, t: step });
    if (r > 0) tu.push(performance.now() - t0);
    t0 = performance.now();
    await guide.session.run({ x, t: tau });
    if (r > 0) tg.push(performance.now() - t0);
  }
  const [u, g] = [summarize(tu), summarize(tg)];
  console.log(
    `| ${name} | ${(net.paramCount / 1e6).toFixed(2)} M | ${fmt(u.median)} | ${fmt(g.median)} [${fmt(g.min)}–${fmt(g.max)}] | **${(g.median / u.median).toFixed(2)}** |`,
  );
  await guide.session.release();
}
await unet.session.release();
