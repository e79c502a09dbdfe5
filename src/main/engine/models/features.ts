/**
 * Feature extractors for Fréchet distance and KID. The default is a fixed random
 * convolutional network (seed 0): it compares low- and mid-level image statistics and needs
 * no download; its numbers are not comparable with Inception-based FID. For comparable
 * numbers supply an ONNX feature extractor (input images in the model's range, output
 * [N, D] or [N, D, 1, 1]).
 */
import type { FeatureExtractor, ImageShape } from '../eval/metrics.js';
import { NetBuilder } from '../nn/layers.js';
import { parseModel, serializeModel } from '../onnx/ir.js';
import { createSession, ort, type SessionOptions } from '../onnx/session.js';
import { readFile } from 'node:fs/promises';

export const RANDOM_FEATURES_NAME = 'random-conv-64 (seed 0; not Inception)';

function randomFeatureNet(channels: number): Uint8Array {
  const net = new NetBuilder('random_features', 0);
  const { g } = net;
  const x = g.input('x', 'float32', ['N', channels, 'H', 'W']);
  let h = net.silu(net.conv2d(x, channels, 32, { stride: 2 }));
  h = net.silu(net.conv2d(h, 32, 64, { stride: 2 }));
  h = net.silu(net.conv2d(h, 64, 64, { stride: 2 }));
  g.identity(net.pool(h), 'features');
  g.output('features', 'float32', ['N', 64]);
  return serializeModel(g.build());
}

export async function createFeatureExtractor(
  opts: { onnx?: string; input?: string; output?: string; channels?: number } & SessionOptions = {},
): Promise<FeatureExtractor> {
  const bytes = opts.onnx ? await readFile(opts.onnx) : randomFeatureNet(opts.channels ?? 3);
  const model = parseModel(bytes, opts.onnx ?? 'random features');
  const input = opts.input ?? model.graph.inputs[0]!.name;
  const output = opts.output ?? model.graph.outputs[0]!.name;
  const s = await createSession(bytes, opts.onnx ?? 'random features', opts);
  return {
    name: opts.onnx ?? RANDOM_FEATURES_NAME,
    async features(images: Float32Array[], shape: ImageShape) {
      const out: Float64Array[] = [];
      const size = shape.channels * shape.height * shape.width;
      for (let i = 0; i < images.length; i += 32) {
        const part = images.slice(i, i + 32);
        const data = new Float32Array(part.length * size);
        part.forEach((img, k) => data.set(img, k * size));
        const r = await s.session.run({
          [input]: new ort.Tensor('float32', data, [part.length, shape.channels, shape.height, shape.width]),
        });
        const f = r[output]!.data as Float32Array;
        const d = f.length / part.length;
        for (let k = 0; k < part.length; k++) out.push(Float64Array.from(f.subarray(k * d, (k + 1) * d)));
      }
      return out;
    },
    dispose: () => s.session.release(),
  };
}
