/**
 * A stand-in ε-network for benchmarks: a few 3×3 convolutions on 64×64 RGB with random
 * weights, built with the engine's graph builder. Its cost is what matters, not its output.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphBuilder } from '../src/main/engine/onnx/builder.js';
import { serializeModel, tensorData } from '../src/main/engine/onnx/ir.js';
import { Rng } from '../src/main/engine/rng.js';

export async function writeConvEpsModel(dir: string, width = 64, layers = 4): Promise<string> {
  const rng = new Rng(1);
  const g = new GraphBuilder('conv_eps');
  const x = g.input('x', 'float32', ['N', 3, 64, 64]);
  g.input('t', 'float32', ['N']);
  let h = x;
  let cin = 3;
  for (let l = 0; l < layers; l++) {
    const cout = l === layers - 1 ? 3 : width;
    const w = new Float32Array(cout * cin * 9).map(() => rng.normal() * Math.sqrt(2 / (cin * 9)));
    const wName = g.constant(tensorData('float32', [cout, cin, 3, 3], w));
    const bName = g.constant(tensorData('float32', [cout], new Float32Array(cout)));
    h = g.op('Conv', [h, wName, bName], { pads: [1, 1, 1, 1] });
    if (l < layers - 1) h = g.op('Relu', [h]);
    cin = cout;
  }
  g.identity(h, 'out');
  g.output('out', 'float32', ['N', 3, 64, 64]);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), serializeModel(g.build()));
  const manifest = {
    format: 'dg-studio/score-model@1',
    name: 'bench conv ε-net',
    onnx: 'model.onnx',
    io: {},
    prediction: 'eps',
    schedule: { kind: 'ddpm-linear' },
    timeInput: { kind: 'step' },
    dataShape: [3, 64, 64],
  };
  const path = join(dir, 'manifest.json');
  await writeFile(path, JSON.stringify(manifest));
  return path;
}
