import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/main/engine/onnx/builder.js';
import { parseModel, serializeModel, tensorData } from '../../src/main/engine/onnx/ir.js';
import { createSession, ort } from '../../src/main/engine/onnx/session.js';
import { mixtureScoreOnnx } from '../../src/main/engine/models/toy-mixture.js';
import { P } from '../helpers/toy.js';

describe('ONNX IR', () => {
  it('parse ∘ serialize keeps a graph: same bytes, same ORT outputs', async () => {
    const bytes = mixtureScoreOnnx(P, { kind: 'ddpm-eps-step', steps: 50 });
    const model = parseModel(bytes, 'toy.onnx');
    expect(model.opsetVersion).toBe(17);
    expect(model.graph.inputs.map((i) => [i.name, i.dtype])).toEqual([
      ['x', 'float32'],
      ['t', 'int64'],
    ]);
    const again = serializeModel(model);
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
    const s = await createSession(again, 'toy.onnx');
    const out = await s.session.run({
      x: new ort.Tensor('float32', Float32Array.from([0.1, 0.2]), [1, 2]),
      t: new ort.Tensor('int64', BigInt64Array.from([10n]), [1]),
    });
    expect(Number.isFinite((out['out']!.data as Float32Array)[0])).toBe(true);
  });

  it('builds float attributes, int lists and float64 graphs that ORT runs', async () => {
    const g = new GraphBuilder('t');
    const x = g.input('x', 'float64', ['N', 3]);
    const y = g.op('LeakyRelu', [x], { alpha: { type: 'float', value: 0.5 } });
    g.op('ReduceSum', [y, g.int64s([1])], { keepdims: 1 }, 'y');
    g.output('y', 'float64', ['N', 1]);
    g.constant(tensorData('float64', [1], [2]), 'unused');
    const s = await createSession(serializeModel(g.build()), 'leaky.onnx');
    const out = await s.session.run({ x: new ort.Tensor('float64', Float64Array.from([1, -2, 3]), [1, 3]) });
    expect(Array.from(out['y']!.data as Float64Array)).toEqual([3]);
  });

  it("keeps other domains' opset imports: ONNX Runtime's own optimized graph (com.microsoft.nchwc ops) parses, serializes and runs", async () => {
    const g = new GraphBuilder('conv');
    const x = g.input('x', 'float32', [1, 16, 8, 8]);
    const w = g.constant(
      tensorData(
        'float32',
        [16, 16, 3, 3],
        Float32Array.from({ length: 16 * 16 * 9 }, (_, i) => Math.sin(i) / 16),
      ),
    );
    g.op('Conv', [x, w], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'y');
    g.output('y', 'float32', [1, 16, 8, 8]);
    const dir = mkdtempSync(join(tmpdir(), 'dg-ir-'));
    const optimized = join(dir, 'optimized.onnx');
    const feeds = {
      x: new ort.Tensor(
        'float32',
        Float32Array.from({ length: 16 * 64 }, (_, i) => Math.cos(i)),
        [1, 16, 8, 8],
      ),
    };
    const reference = await ort.InferenceSession.create(serializeModel(g.build()), {
      optimizedModelFilePath: optimized,
      logSeverityLevel: 3,
    });
    const expected = (await reference.run(feeds))['y']!.data as Float32Array;
    await reference.release();
    const model = parseModel(readFileSync(optimized), 'optimized.onnx');
    rmSync(dir, { recursive: true });
    const domains = new Set(model.graph.nodes.map((n) => n.domain));
    expect(domains.has('com.microsoft.nchwc')).toBe(true);
    expect(model.domainOpsets?.['com.microsoft.nchwc']).toBe(1);
    const again = await ort.InferenceSession.create(serializeModel(model), { graphOptimizationLevel: 'disabled' });
    expect(Array.from((await again.run(feeds))['y']!.data as Float32Array)).toEqual(Array.from(expected));
    await again.release();
  });

  it('rejects bytes that are not ONNX, naming the source', () => {
    expect(() => parseModel(new Uint8Array([1, 2, 3, 4, 5]), 'junk.onnx')).toThrow(/cannot read "junk.onnx"/);
  });
});
