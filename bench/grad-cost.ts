/**
 * bench/grad-cost: (forward + input gradient) time ÷ forward time for the guidance graph,
 * on the bundled discriminator's design, a small conv net, a U-Net-sized encoder and the frozen
 * U-Net encoder design (the bundled U-Net's own encoder), ORT CPU, measured side by side in one
 * process; plus peak RSS. Targets: ≤ 3.5× (the first guidance issue's), ≤ 2.25× (issue 17: what
 * PyTorch's autograd costs on such nets).
 *
 *   npx tsx bench/grad-cost.ts [--profile]     (--profile: per-op-type kernel time of both graphs)
 */
import { buildGuidanceModel } from '../src/main/engine/models/onnx-critic.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildDiscriminatorNet, DEFAULT_ARCH, type BuiltNet, type DiscriminatorArch } from '../src/main/engine/nn/discriminator-net.js';
import { buildFrozenFeatureNet, FROZEN_FEATURES_HEAD } from '../src/main/engine/nn/frozen-features.js';
import { serializeModel } from '../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../src/main/engine/onnx/session.js';
import { fmt, summarize } from './stats.js';
import { opProfile, topOps } from './op-profile.js';

const NETS: [string, DiscriminatorArch][] = [
  // the trainer's default at full resolution (--downsample 1): the bundled default's design
  [
    "the bundled default's design (32-64-64 ch at 64×64, attention at 8; resources/models/noto-emoji-dg)",
    { ...DEFAULT_ARCH, downsample: 1 },
  ],
  [
    'small conv net (32-64 ch, 64×64)',
    {
      kind: 'conv-encoder',
      inChannels: 3,
      resolution: 64,
      channels: [32, 64],
      blocks: 1,
      attentionAt: [],
      groups: 8,
      timeDim: 32,
      classes: 0,
    },
  ],
  [
    'U-Net-sized encoder (64-128-128-256 ch, 2 blocks/level, attention at 16 and 8)',
    {
      kind: 'conv-encoder',
      inChannels: 3,
      resolution: 64,
      channels: [64, 128, 128, 256],
      blocks: 2,
      attentionAt: [16, 8],
      groups: 32,
      timeDim: 256,
      classes: 0,
    },
  ],
];

// the paper's design on the bundled default (docs/emoji-pipeline.md, design C): the bundled U-Net's
// encoder, frozen, cut at its middle block, with the trainer's head; its gradient runs through the encoder
const BUNDLED_UNET = join(import.meta.dirname, '..', 'resources', 'models', 'noto-emoji-unet', 'model.onnx');
const frozenEncoderDesign = async (): Promise<BuiltNet> =>
  buildFrozenFeatureNet(
    {
      kind: 'frozen-features',
      featureOnnx: BUNDLED_UNET,
      featureTensor: 'Add_536_out0',
      ...FROZEN_FEATURES_HEAD,
      timeInput: { name: 't', encoding: { kind: 'ddpm-step', steps: 1000 } },
    },
    await readFile(BUNDLED_UNET),
    [3, 64, 64],
    1,
  );

export async function gradCost({ batch = 4, reps = 15, profile = false } = {}) {
  let peakRss = process.memoryUsage().rss;
  const sample = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));
  const rows = [];
  const designs: [string, () => Promise<BuiltNet>][] = [
    ...NETS.map(([name, arch]): [string, () => Promise<BuiltNet>] => [name, async () => buildDiscriminatorNet(arch, 1)]),
    ["the frozen U-Net encoder design (the bundled U-Net's encoder to its middle block + head; design C)", frozenEncoderDesign],
  ];
  for (const [name, build] of designs) {
    const { model, paramCount } = await build();
    const fwd = await createSession(serializeModel(model), 'forward');
    const guide = await createSession(serializeModel(buildGuidanceModel(model, { x: 'x', output: 'logit' }, 'logit')), 'guidance');
    const x = new ort.Tensor(
      'float32',
      new Float32Array(batch * 3 * 64 * 64).map((_, i) => Math.sin(i)),
      [batch, 3, 64, 64],
    );
    const t = new ort.Tensor(
      'float32',
      Float32Array.from({ length: batch }, (_, i) => 0.1 + 0.2 * i),
      [batch],
    );
    // alternate forward and guidance runs, so drift on a shared machine hits both alike
    const tf: number[] = [];
    const tg: number[] = [];
    for (let r = 0; r < reps + 1; r++) {
      for (const [s, into] of [
        [fwd, tf],
        [guide, tg],
      ] as const) {
        const t0 = performance.now();
        await s.session.run({ x, t });
        sample();
        if (r > 0) into.push(performance.now() - t0);
      }
    }
    const [f1, g1] = [summarize(tf), summarize(tg)];
    const ratio = g1.median / f1.median;
    console.log(`${name}: ${(paramCount / 1e6).toFixed(2)}M params, batch ${batch}`);
    console.log(
      `  forward ${fmt(f1.median)} [${fmt(f1.min)}–${fmt(f1.max)}], forward+∇x ${fmt(g1.median)} [${fmt(g1.min)}–${fmt(g1.max)}], ratio ${ratio.toFixed(2)}× (target ≤ 2.25×)`,
    );
    rows.push({ name, paramCount, forward: f1.median, guidance: g1.median, ratio });
    if (profile) {
      const [pf, pg] = [
        await opProfile(serializeModel(model), { x, t }),
        await opProfile(serializeModel(buildGuidanceModel(model, { x: 'x', output: 'logit' }, 'logit')), { x, t }),
      ];
      const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
      console.log(`  profile, forward (${total(pf).toFixed(1)} ms of kernels): ${topOps(pf)}`);
      console.log(`  profile, forward+∇x (${total(pg).toFixed(1)} ms of kernels): ${topOps(pg, 14)}`);
    }
    await fwd.session.release();
    await guide.session.release();
  }
  console.log(`peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) await gradCost({ profile: process.argv.includes('--profile') });
