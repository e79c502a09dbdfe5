/**
 * The held-out emoji set the quality benches share (sampler-sde-emoji, dg-pilot): N Twemoji of the test split
 * (spread over the sorted list) as one batch, their true Noto drawings, and 128 held-out Noto images as the
 * realism reference; `measure` scores a translated batch against them.
 *   L2 source = RMS distance to the source (faithfulness), per image
 *   L2 truth  = RMS distance to the true Noto drawing of the same emoji, per image
 *   SWD       = sliced Wasserstein (Laplacian patches, ×1000) to the 128 Noto images (realism)
 *   roughness = mean |4-neighbour Laplacian| of the outputs ÷ that of the 128 Noto images
 *   mottle 1× / 4× = roughness where the source is flat, at full resolution and 4×-pooled (metrics.ts, mottle:
 *               pixel speckle and 4-pixel blotches; the true Noto drawings are ≈ 0 in their own flat areas)
 */
import { join } from 'node:path';
import { readImage } from '../src/main/engine/io/image-io.js';
import { l2, meanMottle, meanRoughness, swd, swdPyramids } from '../src/main/engine/eval/metrics.js';
import type { ScoreModel } from '../src/main/engine/models/score-model.js';
import type { Tensor } from '../src/main/engine/tensor.js';
import { spreadSubset } from '../src/main/services/evidence.js';
import { expandInputs, imageSpecOf } from '../src/main/services/translate-files.js';

const data = join(import.meta.dirname, '..', 'data', 'emoji');

export async function heldOutEmoji(model: ScoreModel, n: number) {
  const spec = imageSpecOf(model);
  const shape = { channels: spec.channels, height: spec.height, width: spec.width, range: spec.valueRange };
  const names = spreadSubset(await expandInputs([join(data, 'twitter', 'test')]), n);
  const sources = await Promise.all(names.map((f) => readImage(f, spec)));
  const truths = await Promise.all(names.map((f) => readImage(f.replace('/twitter/', '/google/'), spec)));
  const refImages = await Promise.all(spreadSubset(await expandInputs([join(data, 'google', 'test')]), 128).map((f) => readImage(f, spec)));
  const reference = swdPyramids(refImages, shape);
  const refRoughness = meanRoughness(refImages, shape);
  const item = sources[0]!.length;
  const batch: Tensor = { data: new Float32Array(sources.length * item), shape: [sources.length, ...model.manifest.dataShape] };
  sources.forEach((s, i) => batch.data.set(s, i * item));
  /** A translated batch (in source order) against the sources, their truths and the reference. */
  const measure = (out: Tensor) => {
    const images = sources.map((_, i) => out.data.slice(i * item, (i + 1) * item));
    return {
      l2Source: images.map((x, i) => l2(x, sources[i]!)),
      l2Truth: images.map((x, i) => l2(x, truths[i]!)),
      swd: swd(images, reference, shape).mean,
      roughness: meanRoughness(images, shape) / refRoughness,
      mottle: [meanMottle(images, sources, shape, 1) ?? 0, meanMottle(images, sources, shape, 4) ?? 0] as const,
    };
  };
  return { batch, seeds: (first: number) => sources.map((_, i) => first + i), measure };
}

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
