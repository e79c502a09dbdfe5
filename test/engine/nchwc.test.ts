import { describe, expect, it } from 'vitest';
import { buildUNet } from '../../src/main/engine/nn/unet.js';
import { nchwcBlockSize, useNchwcConvs } from '../../src/main/engine/onnx/nchwc.js';
import { serializeModel } from '../../src/main/engine/onnx/ir.js';
import { inferShapes } from '../../src/main/engine/onnx/shapes.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { Rng } from '../../src/main/engine/rng.js';
import { buildScoreTrainingModel, gradOutputName, LOSS_OUTPUT, TARGET_INPUT } from '../../src/main/engine/train/training-graph.js';

describe("ONNX Runtime's NCHWc convolutions with fed weights", () => {
  it('knows the block of this CPU', async () => {
    const block = await nchwcBlockSize();
    // x64 CPUs with AVX2 block by 8, with AVX-512 by 16 (this project's machines are x64)
    if (process.arch === 'x64') expect([8, 16]).toContain(block);
    else expect([null, 4, 8, 16]).toContain(block);
  });

  it("a U-Net's training step is the same with the fed-weight convolutions rewritten: loss and every gradient", async () => {
    const block = (await nchwcBlockSize()) ?? 16;
    const net = buildUNet({ channels: block, mult: [1, 2], attn: [8], groups: 4, resolution: 32, patch: 2, imageChannels: 3 }, 3);
    const train = buildScoreTrainingModel(net.model, 'out', net.params);
    const { model: fast, rewritten } = useNchwcConvs(train, block);
    // forward and input-gradient convolutions of every level: the only ones left on the plain path have
    // a channel count that is not whole blocks (the 12-channel patch convolutions) — the input gradients'
    // flipped kernels (Slice with step −1) included, whose shapes must be inferred for the rewrite
    const shapes = inferShapes(train.graph, train.graph.nodes);
    const left = fast.graph.nodes.filter((n) => n.opType === 'Conv' && n.domain === '');
    expect(left.length).toBeLessThanOrEqual(3);
    for (const n of left) expect((shapes.get(n.inputs[1]!) as number[]).slice(0, 2).some((c) => c % block !== 0)).toBe(true);
    expect(rewritten).toBeGreaterThan(60);
    expect(fast.graph.nodes.filter((n) => n.domain === 'com.microsoft.nchwc' && n.opType === 'Conv')).toHaveLength(rewritten);
    const rng = new Rng(5);
    const n = 4;
    const size = 3 * 32 * 32;
    const feeds: Record<string, ort.Tensor> = {
      x: new ort.Tensor(
        'float32',
        Float32Array.from({ length: n * size }, () => rng.normal()),
        [n, 3, 32, 32],
      ),
      t: new ort.Tensor('int64', BigInt64Array.from([10n, 200n, 500n, 900n]), [n]),
      [TARGET_INPUT]: new ort.Tensor(
        'float32',
        Float32Array.from({ length: n * size }, () => rng.normal()),
        [n, 3, 32, 32],
      ),
    };
    for (const p of net.params) {
      const init = net.model.graph.initializers.get(p)!;
      // non-zero everywhere (zero-initialized output convolutions would hide their input gradients)
      feeds[p] = new ort.Tensor(
        'float32',
        Float32Array.from(init.data as Float32Array, (v) => v + 0.02 * rng.normal()),
        init.dims,
      );
    }
    const run = async (bytes: Uint8Array) => (await createSession(bytes, 'train')).session.run(feeds);
    const [a, b] = [await run(serializeModel(train)), await run(serializeModel(fast))];
    expect((b[LOSS_OUTPUT]!.data as Float32Array)[0]).toBeCloseTo((a[LOSS_OUTPUT]!.data as Float32Array)[0]!, 5);
    for (const p of net.params) {
      const [ga, gb] = [a[gradOutputName(p)]!.data as Float32Array, b[gradOutputName(p)]!.data as Float32Array];
      const scale = Math.max(1e-6, ...Array.from(ga, Math.abs));
      const worst = Math.max(...Array.from(ga, (v, i) => Math.abs(v - gb[i]!)));
      expect([p, worst / scale < 1e-4]).toEqual([p, true]);
    }
  });
});
