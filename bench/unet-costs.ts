/**
 * bench/unet-costs: what a real 64×64 U-Net score model costs here, and what each
 * discriminator design adds to a translation — side by side in one process.
 *
 *   - U-Net forward: ONNX Runtime CPU, and PyTorch CPU on the same architecture when a Python with
 *     torch is found (the ratio ORT ÷ PyTorch);
 *   - the cost of one guidance call (log r and ∇x log r) ÷ one U-Net call, and the DG overhead of a
 *     Heun translation it implies, for the trainer's default discriminator (32×32 view) and for the
 *     paper-style frozen, time-conditioned U-Net encoder with a trained head.
 *
 * The U-Net comes from tools/train-score-model.py (weights do not matter for cost):
 *   /usr/bin/python3.11 tools/train-score-model.py --data data/emoji/google/test --out .cache/unet-bench --max-steps 1 --batch 2
 *   npx tsx bench/unet-costs.ts --model .cache/unet-bench/manifest.json
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { buildDiscriminatorNet, DEFAULT_ARCH } from '../src/main/engine/nn/discriminator-net.js';
import { buildFrozenFeatureNet } from '../src/main/engine/nn/frozen-features.js';
import { parseModel } from '../src/main/engine/onnx/ir.js';
import { criticFromForward } from '../src/main/engine/models/onnx-critic.js';
import { loadScoreModel } from '../src/main/engine/models/score-model.js';
import { fmt, summarize } from './stats.js';

const root = join(import.meta.dirname, '..');

/** PyTorch CPU forward time per image of tools/train-score-model.py's U-Net, or null without torch. */
function torchForwardMs(batch: number, reps: number): number | null {
  const script = `
import importlib.util, time, torch
torch.set_num_threads(${cpus().length})
spec = importlib.util.spec_from_file_location('t', ${JSON.stringify(join(root, 'tools', 'train-score-model.py'))})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
u = m.UNet().eval()
x = torch.zeros(${batch}, 3, 64, 64); t = torch.full((${batch},), 300, dtype=torch.int64)
with torch.no_grad():
    u(x, t)
    ts = []
    for _ in range(${reps}):
        s = time.perf_counter(); u(x, t); ts.append(time.perf_counter() - s)
ts.sort(); print(ts[len(ts) // 2] * 1000 / ${batch})
`;
  for (const py of ['/usr/bin/python3', '/usr/bin/python3.11', 'python3']) {
    try {
      return Number(
        execFileSync(py, ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] })
          .toString()
          .trim(),
      );
    } catch {
      // no torch with this interpreter: try the next one
    }
  }
  return null;
}

export async function unetCosts(manifestPath: string, { batch = 4, reps = 5 } = {}) {
  const model = await loadScoreModel(manifestPath);
  const unetBytes = readFileSync(join(dirname(manifestPath), model.manifest.onnx));
  const unet = parseModel(unetBytes, manifestPath);
  // the middle block's output: the first input of the first skip concatenation of the up path
  const mid = unet.graph.nodes.find((n) => n.name === '/Concat_1')?.inputs[0];
  if (!mid) throw new Error(`${manifestPath}: not a tools/train-score-model.py U-Net (no node /Concat_1)`);

  // the U-Net alone
  const den = model.denoiser();
  const x = { data: new Float32Array(8 * 3 * 64 * 64).map((_, i) => Math.sin(i / 7)), shape: [8, 3, 64, 64] };
  const fw: number[] = [];
  for (let r = 0; r < reps + 2; r++) {
    const t = performance.now();
    await den(x, new Float64Array(8).fill(2));
    if (r > 1) fw.push((performance.now() - t) / 8); // two warm-ups: ORT's first runs plan memory
  }
  const ortMs = summarize(fw).median;
  console.log(`U-Net (${(unetBytes.length / 2 ** 20).toFixed(1)} MiB ONNX) forward, batch 8: ONNX Runtime ${fmt(ortMs)} per image`);
  const torchMs = torchForwardMs(8, reps);
  if (torchMs === null) console.log('PyTorch: not found (apt-get install python3-torch) — no ORT ÷ PyTorch ratio');
  else console.log(`PyTorch CPU ${fmt(torchMs)} per image: ORT ÷ PyTorch = ×${(ortMs / torchMs).toFixed(2)}`);

  const critics: [string, Awaited<ReturnType<typeof criticFromForward>>][] = [];
  critics.push([
    'default discriminator (0.23 M, 32×32 view)',
    await criticFromForward(buildDiscriminatorNet(DEFAULT_ARCH, 1).model, 'default'),
  ]);
  const frozen = await buildFrozenFeatureNet(
    {
      kind: 'frozen-features',
      featureOnnx: manifestPath,
      featureTensor: mid,
      hidden: 256,
      timeDim: 64,
      timeInput: { name: 't', encoding: { kind: 'ddpm-step', steps: 1000 } },
    },
    unetBytes,
    [3, 64, 64],
    1,
  );
  critics.push(['frozen U-Net encoder + head (time-conditioned)', await criticFromForward(frozen.model, 'frozen')]);

  // per call, each in isolation after two warm-ups (whole translations alternate sessions, and ORT's
  // spinning thread pools then slow whichever runs next: too noisy on 2 cores to compare designs)
  const perCall = async (f: () => Promise<unknown>) => {
    const ts: number[] = [];
    for (let r = 0; r < reps + 2; r++) {
      const t = performance.now();
      await f();
      if (r > 1) ts.push((performance.now() - t) / batch);
    }
    return summarize(ts).median;
  };
  const xb = { data: x.data.subarray(0, batch * 3 * 64 * 64), shape: [batch, 3, 64, 64] };
  const sig = new Float64Array(batch).fill(2);
  const unetCall = await perCall(() => den(xb, sig));
  console.log(`per image, batch ${batch}: U-Net call ${fmt(unetCall)}`);
  for (const [name, critic] of critics) {
    const g = await perCall(() =>
      critic.evaluate(
        xb,
        Float64Array.from({ length: batch }, () => 0.3),
      ),
    );
    // Heun: 2 U-Net calls per step; DG adds 1 guidance call (w2 = 0) or 2 (w1 = w2)
    console.log(
      `${name}: log r and ∇x log r ${fmt(g)} = ×${(g / unetCall).toFixed(3)} of a U-Net call → ` +
        `DG translation ≈ ×${(1 + g / (2 * unetCall)).toFixed(2)} (w2 = 0), ×${(1 + g / unetCall).toFixed(2)} (w1 = w2) of plain SDEdit`,
    );
    await critic.dispose();
  }
  await model.dispose();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf('--model');
  const manifest = i > 0 ? process.argv[i + 1]! : join(root, '.cache', 'unet-bench', 'manifest.json');
  if (!existsSync(manifest)) {
    console.log(`unet-costs: no U-Net at ${manifest}; make one first (see the comment at the top of bench/unet-costs.ts)`);
    process.exit(2);
  }
  await unetCosts(manifest);
}
