/**
 * bench/score-train: training images/s of the score-model U-Net, the app's trainer (ONNX Runtime,
 * the project's autodiff) against PyTorch on CPU (tools/train-score-model.py's module, same
 * architecture, AdamW, batch 32, every core: Debian's build starts with one thread), at widths 32
 * and 64 and with --patch 2; peak RSS of each (each side runs in its own child process); the
 * FLOP ceiling: training FLOPs per image (≈ 3× the forward's conv + linear + matmul FLOPs) against
 * the FLOP/s ORT's forward reaches on the same network with constant weights; and the app's time
 * per op type.
 *
 *   npx tsx bench/score-train.ts                 # all rows (~10 min on 2 cores)
 *   npx tsx bench/score-train.ts --quick         # width 32 only
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { buildUNet, DEFAULT_UNET_ARCH, unetParameterCount, type UNetArch } from '../src/main/engine/nn/unet.js';
import { serializeModel, type OnnxModel } from '../src/main/engine/onnx/ir.js';
import { withFedWeightNchwc } from '../src/main/engine/onnx/nchwc.js';
import { inferShapes } from '../src/main/engine/onnx/shapes.js';
import { createSession, ort } from '../src/main/engine/onnx/session.js';
import { ScoreTrainer } from '../src/main/engine/train/score-trainer.js';
import { buildScoreTrainingModel } from '../src/main/engine/train/training-graph.js';
import { Rng } from '../src/main/engine/rng.js';
import { summarize } from './stats.js';
import { opProfile } from './op-profile.js';

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

const root = join(import.meta.dirname, '..');
const BATCH = 32;

interface Config {
  channels: number;
  patch: number;
}

const archOf = (c: Config): UNetArch => ({ ...DEFAULT_UNET_ARCH, channels: c.channels, patch: c.patch, groups: 8 });

/** Forward FLOPs per image of the conv, linear and matmul nodes (2 per multiply–add). */
export function forwardFlops(model: OnnxModel): number {
  const g = model.graph;
  const shapes = inferShapes(
    { ...g, inputs: g.inputs.map((i) => ({ ...i, shape: i.shape?.map((d) => (d === 'N' ? 1 : d)) ?? null })) },
    g.nodes,
  );
  const dims = (v: string) => (shapes.get(v) ?? []).map(Number);
  let flops = 0;
  for (const n of g.nodes) {
    if (n.opType === 'Conv') {
      const w = dims(n.inputs[1]!);
      const y = dims(n.outputs[0]!);
      flops += 2 * w.reduce((a, b) => a * b, 1) * y.slice(2).reduce((a, b) => a * b, 1);
    } else if (n.opType === 'Gemm') {
      const w = dims(n.inputs[1]!);
      flops += 2 * w[0]! * w[1]!;
    } else if (n.opType === 'MatMul') {
      const a = dims(n.inputs[0]!);
      const b = dims(n.inputs[1]!);
      flops += 2 * a.reduce((p, q) => p * q, 1) * b[b.length - 1]!; // [.., M, K] × [.., K, N]
    }
  }
  return flops;
}

/** Child: the app's training img/s (median of `reps` steps after one warm-up), and its op profile. */
async function appChild(c: Config, reps: number): Promise<void> {
  const built = buildUNet(archOf(c), 0);
  const tr = await ScoreTrainer.create(built, {
    batchSize: BATCH,
    lr: 2e-4,
    warmupSteps: 10,
    emaDecay: 0.999,
    gradClip: 1,
    tMax: 1,
    seed: 0,
    hflip: true,
  });
  const rng = new Rng(1);
  const data = Array.from({ length: 64 }, () => Float32Array.from({ length: 3 * 64 * 64 }, () => rng.uniform() * 2 - 1));
  await tr.trainStep(data);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await tr.trainStep(data);
    times.push(performance.now() - t0);
  }
  await tr.dispose();
  // op-type profile of the training graph alone
  const feeds: Record<string, ortNode.Tensor> = {};
  for (const p of built.params) {
    const t = built.model.graph.initializers.get(p)!;
    feeds[p] = new ortNode.Tensor('float32', t.data as Float32Array, t.dims);
  }
  const n = BATCH * 3 * 64 * 64;
  feeds['x'] = new ortNode.Tensor(
    'float32',
    Float32Array.from({ length: n }, () => rng.normal()),
    [BATCH, 3, 64, 64],
  );
  feeds['target'] = new ortNode.Tensor(
    'float32',
    Float32Array.from({ length: n }, () => rng.normal()),
    [BATCH, 3, 64, 64],
  );
  feeds['t'] = new ortNode.Tensor(
    'int64',
    BigInt64Array.from({ length: BATCH }, (_, i) => BigInt(i * 31)),
    [BATCH],
  );
  // the graph the trainer runs: its fed-weight convolutions rewritten for ORT's NCHWc kernels
  const byOp = await opProfile(
    serializeModel(await withFedWeightNchwc(buildScoreTrainingModel(built.model, 'out', built.params))),
    feeds,
    3,
  );
  console.log(
    JSON.stringify({ msPerStep: summarize(times).median, rssMiB: process.resourceUsage().maxRSS / 1024, byOp: Object.fromEntries(byOp) }),
  );
}

/** ORT forward FLOP/s with constant weights (what inference gets: NCHWc convolutions). */
async function ortForwardFlopsPerSecond(c: Config, reps: number): Promise<number> {
  const built = buildUNet(archOf(c), 0);
  const s = await createSession(serializeModel(built.model), 'forward');
  const x = new ort.Tensor('float32', new Float32Array(BATCH * 3 * 64 * 64).fill(0.1), [BATCH, 3, 64, 64]);
  const t = new ort.Tensor(
    'int64',
    BigInt64Array.from({ length: BATCH }, () => 300n),
    [BATCH],
  );
  await s.session.run({ x, t });
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await s.session.run({ x, t });
    times.push(performance.now() - t0);
  }
  await s.session.release();
  return (forwardFlops(built.model) * BATCH) / (summarize(times).median / 1000);
}

/** PyTorch's training img/s and peak RSS on the same architecture, or null without torch. */
function torchTrain(c: Config, reps: number): { imgPerSec: number; rssMiB: number; python: string } | null {
  const script = `
import importlib.util, resource, time, torch, torch.nn.functional as F
torch.set_num_threads(${cpus().length})
spec = importlib.util.spec_from_file_location('t', ${JSON.stringify(join(root, 'tools', 'train-score-model.py'))})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
net = m.UNet(${c.channels}, (1, 2, 2, 2), (16, 8), 8, 64, ${c.patch})
opt = torch.optim.AdamW(net.parameters(), lr=2e-4, weight_decay=0.0)
x = torch.rand(${BATCH}, 3, 64, 64) * 2 - 1; e = torch.randn(${BATCH}, 3, 64, 64); t = torch.randint(0, 1000, (${BATCH},))
def step():
    loss = F.mse_loss(net(x, t), e); opt.zero_grad(set_to_none=True); loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0); opt.step()
step()
ts = []
for _ in range(${reps}):
    s = time.perf_counter(); step(); ts.append(time.perf_counter() - s)
ts.sort()
print(${BATCH} / ts[len(ts) // 2], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
`;
  for (const py of ['/usr/bin/python3', 'python3']) {
    try {
      const [a, b] = execFileSync(py, ['-c', script], {
        stdio: ['ignore', 'pipe', 'ignore'],
        env: { ...process.env, OMP_NUM_THREADS: String(cpus().length) },
      })
        .toString()
        .trim()
        .split(/\s+/)
        .map(Number);
      return { imgPerSec: a!, rssMiB: b!, python: py };
    } catch {
      // no torch here: try the next interpreter
    }
  }
  return null;
}

export async function scoreTrain({ quick = false, reps = 4 } = {}): Promise<void> {
  const configs: Config[] = quick
    ? [
        { channels: 32, patch: 1 },
        { channels: 32, patch: 2 },
      ]
    : [
        { channels: 32, patch: 1 },
        { channels: 64, patch: 1 },
        { channels: 32, patch: 2 },
      ];
  console.log(`batch ${BATCH}, 64×64, mult 1-2-2-2, attention at 16 and 8, ${cpus().length} cores; median of ${reps} steps`);
  console.log(
    '| width | patch | params | fwd GFLOP/img | ORT fwd GFLOP/s | ceiling img/s | app img/s | PyTorch img/s | app ÷ PyTorch | app ÷ ceiling | RSS app / PyTorch MiB |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  const profiles: [string, Record<string, number>, number][] = [];
  for (const c of configs) {
    const built = buildUNet(archOf(c), 0);
    const fwdFlops = forwardFlops(built.model);
    const ortFlops = await ortForwardFlopsPerSecond(c, reps);
    const ceiling = ortFlops / (3 * fwdFlops);
    const child = JSON.parse(
      execFileSync(
        process.execPath,
        [...process.execArgv, import.meta.filename, '--child', String(c.channels), String(c.patch), String(reps)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      )
        .toString()
        .trim()
        .split('\n')
        .pop()!,
    ) as { msPerStep: number; rssMiB: number; byOp: Record<string, number> };
    const app = (BATCH * 1000) / child.msPerStep;
    const torch = torchTrain(c, reps);
    profiles.push([`width ${c.channels}, patch ${c.patch}`, child.byOp, child.msPerStep]);
    console.log(
      `| ${c.channels} | ${c.patch} | ${(unetParameterCount(built) / 1e6).toFixed(2)} M | ${fmt(fwdFlops / 1e9)} | ${fmt(ortFlops / 1e9)} | ${fmt(ceiling)} | ${fmt(app)} | ` +
        `${torch ? fmt(torch.imgPerSec) : 'no torch'} | ${torch ? fmt(app / torch.imgPerSec) : '–'} | ${fmt(app / ceiling)} | ${child.rssMiB.toFixed(0)} / ${torch ? torch.rssMiB.toFixed(0) : '–'} |`,
    );
  }
  for (const [name, byOp, ms] of profiles) {
    const total = Object.values(byOp).reduce((a, b) => a + b, 0);
    const top = Object.entries(byOp)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([op, t]) => `${op} ${t.toFixed(0)} ms (${((100 * t) / total).toFixed(0)} %)`);
    console.log(`app step, ${name}: ${ms.toFixed(0)} ms; by op type: ${top.join(', ')}`);
  }
}

const args = process.argv.slice(2);
if (args[0] === '--child') await appChild({ channels: Number(args[1]), patch: Number(args[2]) }, Number(args[3]));
else if (import.meta.filename === process.argv[1]) await scoreTrain({ quick: args.includes('--quick') });
