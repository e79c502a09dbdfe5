/**
 * bench/sampler-overhead: how much time per step the engine spends outside the model call
 * (schedules, parameterization, sampler arithmetic, guidance plumbing) against the model
 * call itself, measured in the same run. Prints medians over repetitions and the ratio.
 *
 *   npx tsx bench/sampler-overhead.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalDenoiser } from '../src/main/engine/sampling/denoiser.js';
import { ort } from '../src/main/engine/onnx/session.js';
import { BatchRng } from '../src/main/engine/rng.js';
import { loadScoreModel } from '../src/main/engine/models/score-model.js';
import { sdedit } from '../src/main/engine/sampling/sdedit.js';
import type { Tensor } from '../src/main/engine/tensor.js';
import { writeConvEpsModel } from './conv-eps-model.js';
import { fmt, summarize } from './stats.js';

export async function samplerOverhead({ batch = 4, steps = 20, reps = 5 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'dg-bench-'));
  try {
    const model = await loadScoreModel(await writeConvEpsModel(dir));
    const rows: { sampler: string; engine: number; model: number; ratio: number }[] = [];
    for (const sampler of ['euler', 'heun', 'ddim', 'ddpm'] as const) {
      const engineMs: number[] = [];
      const modelMs: number[] = [];
      for (let r = 0; r < reps + 1; r++) {
        let inModel = 0;
        let calls = 0;
        // the same network call, timed from the inside
        const timedNet = async (x: Tensor, time: Float64Array) => {
          const t0 = performance.now();
          const out = await model.session.session.run({
            x: new ort.Tensor('float32', x.data, x.shape),
            t: new ort.Tensor('float32', Float32Array.from(time), [time.length]),
          });
          inModel += performance.now() - t0;
          calls++;
          return { data: out['out']!.data as Float32Array, shape: [...x.shape] };
        };
        const denoise = canonicalDenoiser(timedNet, {
          name: 'bench',
          prediction: 'eps',
          schedule: model.schedule,
          timeInput: { kind: 'step', scale: 1 },
          preconditioning: { kind: 'none' },
        });
        const src: Tensor = { data: new Float32Array(batch * 3 * 64 * 64).fill(0.1), shape: [batch, 3, 64, 64] };
        const t0 = performance.now();
        await sdedit(denoise, model.schedule, src, { t0: 0.6, steps, sampler }, { rng: BatchRng.consecutive(0, batch) });
        const total = performance.now() - t0;
        if (r === 0) continue; // warm-up
        engineMs.push((total - inModel) / calls);
        modelMs.push(inModel / calls);
      }
      const e = summarize(engineMs);
      const m = summarize(modelMs);
      rows.push({ sampler, engine: e.median, model: m.median, ratio: e.median / m.median });
      console.log(
        `${sampler.padEnd(5)} per model call: engine ${fmt(e.median)} [${fmt(e.min)}–${fmt(e.max)}], model ${fmt(m.median)} [${fmt(m.min)}–${fmt(m.max)}], engine/model = ${(e.median / m.median).toFixed(3)}`,
      );
    }
    await model.dispose();
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log('sampler-overhead: batch 4 × 3×64×64, 20 steps, 4-layer 64-channel conv ε-net on ORT CPU, median of 5 runs');
  await samplerOverhead();
}
