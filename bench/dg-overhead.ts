/**
 * bench/dg-overhead: time per translation with discriminator guidance vs plain SDEdit at
 * equal steps, side by side in one process. Score model: a stand-in conv ε-net sized to cost
 * about what a 9M-parameter 64×64 U-Net does on this CPU; discriminator: the trainer's
 * default architecture (random weights — cost, not quality). Target ≤ 1.25×.
 *
 *   npx tsx bench/dg-overhead.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TranslateParamsSchema } from '../src/shared/params.js';
import { criticFromForward } from '../src/main/engine/models/onnx-critic.js';
import { buildDiscriminatorNet, DEFAULT_ARCH } from '../src/main/engine/nn/discriminator-net.js';
import { loadScoreModel } from '../src/main/engine/models/score-model.js';
import { translateBatch } from '../src/main/engine/sampling/translate.js';
import { writeConvEpsModel } from './conv-eps-model.js';
import { fmt, summarize } from './stats.js';

export async function dgOverhead({ batch = 4, steps = 10, reps = 3 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'dg-bench-'));
  try {
    const model = await loadScoreModel(await writeConvEpsModel(dir, 128, 14));
    const net = buildDiscriminatorNet(DEFAULT_ARCH, 1);
    const critic = await criticFromForward(net.model, 'bench');
    const src = { data: new Float32Array(batch * 3 * 64 * 64).map((_, i) => Math.sin(i / 7)), shape: [batch, 3, 64, 64] };
    const seeds = Array.from({ length: batch }, (_, i) => i);
    const cases = [
      ['plain SDEdit (w = 0)', { dgWeight: 0 }],
      ['DG, paper setting (w1 = 2, w2 = 0: one discriminator call per step)', { dgWeight: 2, dgWeight2: 0 }],
      ['DG, w1 = w2 = 1 (two calls per Heun step)', { dgWeight: 1, dgWeight2: 1 }],
    ] as const;
    const medians: number[] = [];
    for (const [name, over] of cases) {
      const params = TranslateParamsSchema.parse({ t0: 0.6, steps, sampler: 'heun', dgWindow: [0, 1], ...over });
      const times: number[] = [];
      for (let r = 0; r < reps + 1; r++) {
        const t0 = performance.now();
        await translateBatch(model, src, params, { seeds, critic });
        if (r > 0) times.push((performance.now() - t0) / batch);
      }
      const s = summarize(times);
      medians.push(s.median);
      if (medians.length === 1)
        console.log(`  (score model: ${fmt(s.median / (2 * steps - 1))} per evaluation per image; a 9M U-Net costs ≈120 ms here)`);
      console.log(
        `${name}: ${fmt(s.median)} per image [${fmt(s.min)}–${fmt(s.max)}], ×${(s.median / medians[0]!).toFixed(3)} of plain (target ≤ 1.25)`,
      );
    }
    await critic.dispose();
    await model.dispose();
    return medians;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log('dg-overhead: batch 4 × 3×64×64, Heun, 10 steps from t0 = 0.6, DG window [0, 1]; median of 3 runs');
  await dgOverhead();
}
