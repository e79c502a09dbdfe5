/**
 * What a sweep translates with: a pixel score model (a manifest) or a Stable Diffusion-family folder (latent
 * SDEdit with its text, issue 27), each with its discriminator, behind one interface, so sweeps and the evidence
 * report measure either the same way — on images of one size (a latent model's square `imageSize`).
 */
import type { TranslateParams, TranslateParamsInput } from '../../shared/params.js';
import { t0RangeProblem } from '../../shared/manifest.js';
import type { ImageSpec } from '../engine/io/image-io.js';
import { isDiffusersFolder, latentModelName } from '../engine/models/diffusers-folder.js';
import { loadDiscriminator, type LoadedDiscriminator } from '../engine/models/discriminator.js';
import { loadLatentModel } from '../engine/models/latent-model.js';
import { lvpSigmaVe } from '../engine/models/schedules.js';
import { loadScoreModel } from '../engine/models/score-model.js';
import type { SessionOptions } from '../engine/onnx/session.js';
import { criticAtVeState } from '../engine/sampling/guidance.js';
import { translateLatentBatch } from '../engine/sampling/latent-translate.js';
import { translateBatch } from '../engine/sampling/translate.js';
import { loadClipTokenizer } from '../engine/text/clip-tokenizer.js';
import { join } from 'node:path';
import { latentDiscriminator } from './translate-latent-files.js';
import { imageSpecOf } from './translate-files.js';

export interface SweepTranslator {
  /** the model's name, for the results */
  name: string;
  discriminatorName: string | null;
  /** the images every source is read at, and the outputs come back at */
  spec: ImageSpec;
  /** a batch of sources (each `spec`-sized) translated with these seeds, clipped to the value range */
  translate(sources: Float32Array[], params: TranslateParams, seeds: number[], signal?: AbortSignal): Promise<Float32Array[]>;
  /** the discriminator's mean log ratio on outputs at τ 0.01 (pixel discriminators; null otherwise) */
  meanLogRatio(outputs: Float32Array[]): Promise<number | null>;
  dispose(): Promise<void>;
}

export interface SweepModels {
  modelManifest: string;
  discriminatorManifest?: string | undefined;
  t0s: number[];
  /** the parameters as given (a latent folder's dg-studio.json fills the text they leave out) */
  params?: TranslateParamsInput | undefined;
  /** a latent model's square image side (default: its dg-studio.json's imageSize, else 512) */
  imageSize?: number | undefined;
}

const clip = (data: Float32Array, size: number, n: number, spec: ImageSpec) =>
  Array.from({ length: n }, (_, i) =>
    Float32Array.from(data.subarray(i * size, (i + 1) * size), (v) => Math.max(spec.valueRange[0], Math.min(spec.valueRange[1], v))),
  );

const batchOf = (sources: Float32Array[], spec: ImageSpec) => {
  const size = spec.channels * spec.height * spec.width;
  const data = new Float32Array(sources.length * size);
  sources.forEach((s, i) => data.set(s, i * size));
  return { data, shape: [sources.length, spec.channels, spec.height, spec.width] };
};

/** The translator for `m.modelManifest`: a diffusers folder is a latent model, anything else a score-model manifest. */
export async function openSweepTranslator(m: SweepModels, session: SessionOptions): Promise<SweepTranslator> {
  return isDiffusersFolder(m.modelManifest) ? latentTranslator(m, session) : pixelTranslator(m, session);
}

async function pixelTranslator(m: SweepModels, session: SessionOptions): Promise<SweepTranslator> {
  const model = await loadScoreModel(m.modelManifest, session);
  let disc: LoadedDiscriminator | null = null;
  try {
    const outOfRange = m.t0s.map((t0) => t0RangeProblem(model.manifest, t0)).find((p) => p);
    if (outOfRange) throw new Error(`sweep: ${outOfRange}`);
    if (m.discriminatorManifest)
      disc = await loadDiscriminator(
        m.discriminatorManifest,
        { dataShape: model.manifest.dataShape, valueRange: model.manifest.valueRange },
        session,
      );
  } catch (e) {
    await model.dispose();
    throw e;
  }
  const spec = imageSpecOf(model);
  const size = spec.channels * spec.height * spec.width;
  return {
    name: model.manifest.name,
    discriminatorName: disc?.manifest.name ?? null,
    spec,
    async translate(sources, params, seeds, signal) {
      const out = await translateBatch(model, batchOf(sources, spec), params, { seeds, critic: disc?.critic, signal });
      return clip(out.data, size, sources.length, spec);
    },
    async meanLogRatio(outputs) {
      if (!disc) return null;
      const sigma = Float64Array.from(outputs, () => lvpSigmaVe(0.01));
      const values = (await criticAtVeState(disc.critic, batchOf(outputs, spec), sigma)).value;
      return values.reduce((a, b) => a + b, 0) / values.length;
    },
    async dispose() {
      await disc?.dispose();
      await model.dispose();
    },
  };
}

async function latentTranslator(m: SweepModels, session: SessionOptions): Promise<SweepTranslator> {
  const model = await loadLatentModel(m.modelManifest, session);
  let disc: LoadedDiscriminator | null = null;
  try {
    if (m.discriminatorManifest) disc = await latentDiscriminator(m.discriminatorManifest, model, { onWarning: session.onWarning });
  } catch (e) {
    await model.dispose();
    throw e;
  }
  const d = model.folder.defaults;
  const side = m.imageSize ?? d.imageSize ?? 512;
  const spec: ImageSpec = { channels: 3, height: side, width: side, valueRange: [-1, 1] };
  const size = 3 * side * side;
  const tokenizer = loadClipTokenizer(join(m.modelManifest, 'tokenizer'));
  const given = m.params ?? {};
  return {
    name: latentModelName(m.modelManifest, d),
    discriminatorName: disc?.manifest.name ?? null,
    spec,
    async translate(sources, params, seeds, signal) {
      // the text the parameters leave out comes from the folder's own suggestions, as in the CLI
      const text = {
        prompt: given.prompt ?? d.prompt ?? params.prompt,
        negativePrompt: given.negativePrompt ?? d.negativePrompt ?? params.negativePrompt,
        cfgScale: given.cfgScale ?? d.cfgScale ?? params.cfgScale,
      };
      const critic = disc ? { critic: disc.critic, dataShape: disc.manifest.dataShape } : undefined;
      const out = await translateLatentBatch(model, tokenizer, batchOf(sources, spec), { ...params, ...text }, text, {
        seeds,
        critic,
        signal,
      });
      return clip(out.images.data, size, sources.length, spec);
    },
    meanLogRatio: async () => null,
    async dispose() {
      await disc?.dispose();
      await model.dispose();
    },
  };
}
