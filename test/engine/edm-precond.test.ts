import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomizedUNet, TINY_UNET } from '../helpers/unet.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/main/engine/io/safetensors.js';
import { edmPreconditioning } from '../../src/main/engine/models/parameterizations.js';
import { buildUNet, withUNetWeights } from '../../src/main/engine/nn/unet.js';
import { serializeModel } from '../../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { Rng } from '../../src/main/engine/rng.js';
import { asEpsNetwork, ddpmLogSigmas, EDM_SIGMA_DATA, edmTrainingItem, fractionalStep } from '../../src/main/engine/train/edm-precond.js';
import {
  ALPHA_BARS,
  checkpointArch,
  checkpointPrecond,
  maxTrainingStep,
  ScoreTrainer,
  type ScoreTrainerOptions,
} from '../../src/main/engine/train/score-trainer.js';

const TINY = TINY_UNET;
const OPTS: ScoreTrainerOptions = { batchSize: 4, lr: 1e-3, warmupSteps: 3, emaDecay: 0.9, gradClip: 1, tMax: 1, seed: 5, hflip: false };
const SIZE = 3 * 8 * 8;

const LOG_SIGMAS = ddpmLogSigmas(ALPHA_BARS);

describe('EDM preconditioning in the trainer (dg-math §9)', () => {
  it('the fractional step of ln σ is the step itself at the table, interpolated between, clamped outside', () => {
    for (const i of [0, 1, 17, 500, 799]) expect(fractionalStep(LOG_SIGMAS[i]!, LOG_SIGMAS, 799)).toBeCloseTo(i, 9);
    const mid = 0.5 * (LOG_SIGMAS[300]! + LOG_SIGMAS[301]!);
    expect(fractionalStep(mid, LOG_SIGMAS, 799)).toBeCloseTo(300.5, 9);
    expect(fractionalStep(-50, LOG_SIGMAS, 799)).toBe(0);
    expect(fractionalStep(50, LOG_SIGMAS, 799)).toBe(799);
    // σ_i = sqrt((1 − ᾱ_i)/ᾱ_i) (dg-math §1)
    expect(Math.exp(LOG_SIGMAS[499]!)).toBeCloseTo(Math.sqrt((1 - ALPHA_BARS[499]!) / ALPHA_BARS[499]!), 12);
  });

  it("a training item: F's input is c_in·(x0 + σn), and F = its target makes D = x0 exactly", () => {
    const rng = new Rng(3);
    const x0 = Float32Array.from({ length: SIZE }, () => rng.normal() * 0.5);
    const n = Float32Array.from({ length: SIZE }, () => rng.normal());
    for (const sigma of [0.01, 0.7, 12]) {
      const input = new Float32Array(SIZE);
      const target = new Float32Array(SIZE);
      edmTrainingItem(x0, n, sigma, input, target);
      const c = edmPreconditioning(sigma, EDM_SIGMA_DATA);
      for (let i = 0; i < SIZE; i += 7) {
        const x = input[i]! / c.cIn;
        expect(x).toBeCloseTo(x0[i]! + sigma * n[i]!, 4);
        expect(c.cSkip * x + c.cOut * target[i]!).toBeCloseTo(x0[i]!, 4);
      }
    }
  });

  it('wrapped as an ε network, F gives ε̂ = (x_ve − c_skip·x_ve − c_out·F(c_in·x_ve; t))/σ at the integer step', async () => {
    const built = randomizedUNet(TINY, 4);
    const f = {
      ...built.model,
      graph: {
        ...built.model.graph,
        inputs: built.model.graph.inputs.map((i) => (i.name === 't' ? { ...i, dtype: 'float32' as const } : i)),
      },
    };
    const [fs, eps] = await Promise.all([
      createSession(serializeModel(f), 'F'),
      createSession(serializeModel(asEpsNetwork(f, ALPHA_BARS)), 'ε network'),
    ]);
    const rng = new Rng(8);
    const steps = [3, 250, 640];
    const N = steps.length;
    const xt = Float32Array.from({ length: N * SIZE }, () => rng.normal());
    const got = (
      await eps.session.run({
        x: new ort.Tensor('float32', xt, [N, 3, 8, 8]),
        t: new ort.Tensor('int64', BigInt64Array.from(steps, BigInt), [N]),
      })
    )['out']!.data as Float32Array;
    // the closed form, with F run alone on its preconditioned input
    const xVe = new Float32Array(N * SIZE);
    const fIn = new Float32Array(N * SIZE);
    const sigmas = steps.map((i) => Math.sqrt((1 - ALPHA_BARS[i]!) / ALPHA_BARS[i]!));
    steps.forEach((i, b) => {
      const c = edmPreconditioning(sigmas[b]!, EDM_SIGMA_DATA);
      for (let k = b * SIZE; k < (b + 1) * SIZE; k++) {
        xVe[k] = xt[k]! / Math.sqrt(ALPHA_BARS[i]!);
        fIn[k] = c.cIn * xVe[k]!;
      }
    });
    const fOut = (
      await fs.session.run({
        x: new ort.Tensor('float32', fIn, [N, 3, 8, 8]),
        t: new ort.Tensor('float32', Float32Array.from(steps), [N]),
      })
    )['out']!.data as Float32Array;
    let worst = 0;
    steps.forEach((_, b) => {
      const c = edmPreconditioning(sigmas[b]!, EDM_SIGMA_DATA);
      for (let k = b * SIZE; k < (b + 1) * SIZE; k++) {
        const want = (xVe[k]! - c.cSkip * xVe[k]! - c.cOut * fOut[k]!) / sigmas[b]!;
        worst = Math.max(worst, Math.abs(got[k]! - want) / (1 + Math.abs(want)));
      }
    });
    expect(worst).toBeLessThan(1e-4);
    expect(fOut.some((v) => Math.abs(v) > 1e-3)).toBe(true); // F itself took part
  });

  it('batches draw ln σ ~ N(P_mean, P_std²) within the trained steps, at their fractional steps, from (seed, step) alone', async () => {
    const tr = await ScoreTrainer.create(buildUNet(TINY, 1), {
      ...OPTS,
      batchSize: 512,
      tMax: 0.5,
      precond: 'edm',
      noise: { pMean: -0.8, pStd: 0.9 },
    });
    const x0 = Float32Array.from({ length: SIZE }, (_, i) => Math.sin(i) * 0.5);
    const hi = maxTrainingStep(0.5);
    const lnSigmas: number[] = [];
    for (const step of [0, 1, 2]) {
      const { x, t, target, sigma } = tr.makeBatch([x0], step);
      expect(t).toBeInstanceOf(Float32Array);
      for (let b = 0; b < 512; b++) {
        const s = sigma[b]!;
        lnSigmas.push(Math.log(s));
        expect(s).toBeGreaterThanOrEqual(Math.exp(LOG_SIGMAS[0]!) * (1 - 1e-9));
        expect(s).toBeLessThanOrEqual(Math.exp(LOG_SIGMAS[hi]!) * (1 + 1e-9));
        expect(t[b]!).toBeCloseTo(fractionalStep(Math.log(s), LOG_SIGMAS, hi), 3);
        // one image, no flips: the input and target give x0 back (dg-math §9)
        const c = edmPreconditioning(s, EDM_SIGMA_DATA);
        const k = b * SIZE + 11;
        expect(c.cSkip * (x[k]! / c.cIn) + c.cOut * target[k]!).toBeCloseTo(x0[11]!, 3);
      }
    }
    // the trained steps' σ at t_max 0.5 span ln σ −4.61 … 1.24: N(-0.8, 0.9²) reaches the top 1.2 % of the time (clamped
    // there); the rest have the truncated normal's mean −0.8 − 0.9·φ(2.26)/Φ(2.26) = −0.828 (± 0.023 for 1,536 draws)
    const inside = lnSigmas.filter((v) => v < LOG_SIGMAS[hi]! - 1e-6);
    const mean = inside.reduce((a, b) => a + b, 0) / inside.length;
    expect(inside.length / lnSigmas.length).toBeGreaterThan(0.96);
    expect(Math.abs(mean + 0.828)).toBeLessThan(4 * 0.023);
    const replay = tr.makeBatch([x0], 1);
    expect(Array.from(replay.sigma)).toEqual(Array.from(tr.makeBatch([x0], 1).sigma));
    await tr.dispose();
  });

  it('trains, checkpoints with its recipe, resumes to the same ε̂, and exports the network its forward pass runs', async () => {
    const rng = new Rng(12);
    const data = Array.from({ length: 6 }, () => Float32Array.from({ length: SIZE }, () => 0.4 * rng.normal()));
    const opts: ScoreTrainerOptions = { ...OPTS, precond: 'edm', noise: { pMean: -1.2, pStd: 1.2 } };
    const tr = await ScoreTrainer.create(buildUNet(TINY, 2), opts);
    const losses: number[] = [];
    for (let i = 0; i < 40; i++) losses.push((await tr.trainStep(data)).loss);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)));
    const file = decodeSafetensors(encodeSafetensors(tr.checkpoint()), 'ckpt');
    expect(JSON.parse(file.metadata['arch']!).precond).toBe('edm');
    expect(JSON.parse(file.metadata['noise_history']!)).toEqual([{ step: 0, p_mean: -1.2, p_std: 1.2 }]);
    const back = await ScoreTrainer.create(buildUNet(TINY, 99), opts);
    back.restore(file, 'ckpt');
    const xt = Float32Array.from({ length: 2 * SIZE }, () => rng.normal());
    const a = await tr.predict(xt, [40, 700]);
    expect(Array.from(await back.predict(xt, [40, 700]))).toEqual(Array.from(a));
    const exported = await createSession(serializeModel(tr.exportModel()), 'export');
    const e = (
      await exported.session.run({
        x: new ort.Tensor('float32', xt, [2, 3, 8, 8]),
        t: new ort.Tensor('int64', BigInt64Array.from([40n, 700n]), [2]),
      })
    )['out']!.data as Float32Array;
    for (let k = 0; k < e.length; k += 5) expect(e[k]!).toBeCloseTo(a[k]!, 4);
    await tr.dispose();
    await back.dispose();
  });

  it("the bundled default's checkpoint, wrapped here, is the model.onnx PyTorch exported from it (two implementations of §9)", async () => {
    const root = join(import.meta.dirname, '..', '..');
    const ckpt = join(root, 'tools', 'pretrained', 'noto-emoji-unet-edm', 'checkpoint.safetensors');
    const file = decodeSafetensors(await readFile(ckpt), ckpt);
    expect(checkpointPrecond(file, ckpt)).toBe('edm');
    const built = buildUNet(checkpointArch(file, ckpt));
    const ours = asEpsNetwork(
      withUNetWeights(built, (p) => file.tensors.get(`ema.${p}`)?.data as Float32Array | undefined, ckpt),
      ALPHA_BARS,
    );
    const [a, b] = await Promise.all([
      createSession(serializeModel(ours), 'ours'),
      createSession(await readFile(join(root, 'resources', 'models', 'noto-emoji-unet', 'model.onnx')), 'bundled'),
    ]);
    const rng = new Rng(21);
    const steps = [20, 300, 700];
    const xt = Float32Array.from({ length: 3 * 3 * 64 * 64 }, () => rng.normal());
    const feeds = {
      x: new ort.Tensor('float32', xt, [3, 3, 64, 64]),
      t: new ort.Tensor('int64', BigInt64Array.from(steps, BigInt), [3]),
    };
    const [x, y] = [(await a.session.run(feeds))['out']!.data as Float32Array, (await b.session.run(feeds))['out']!.data as Float32Array];
    let worst = 0;
    let scale = 0;
    for (let k = 0; k < x.length; k++) {
      worst = Math.max(worst, Math.abs(x[k]! - y[k]!));
      scale = Math.max(scale, Math.abs(y[k]!));
    }
    expect(scale).toBeGreaterThan(0.5);
    expect(worst).toBeLessThan(1e-5 * scale); // float32 rounding: 6e-6 of 8.6 measured
  }, 60_000);
});
