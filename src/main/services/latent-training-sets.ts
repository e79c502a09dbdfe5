/**
 * A discriminator's data for a Stable Diffusion-family model (issue 27; dg-math §6 in the latent space of §11):
 * real = the target images' latents, fake = the sources' latents and their unguided latent translations (with the
 * prompt and CFG the user translates with). Every image is brought to one square size (cover and centre-crop),
 * encoded once with the VAE (the posterior mean, scaled) and cached on disk, like the pixel trainer's fakes.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { TranslateParamsSchema } from '../../shared/params.js';
import { writeFileAtomic, type ImageSpec } from '../engine/io/image-io.js';
import { loadLatentModel, type LatentModel } from '../engine/models/latent-model.js';
import { modelSchedule } from '../engine/sampling/model-schedule.js';
import { encodeLatents, translateLatents, type TextConditioning } from '../engine/sampling/latent-translate.js';
import type { Tensor } from '../engine/tensor.js';
import { loadClipTokenizer } from '../engine/text/clip-tokenizer.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { folderDigest } from './scale-out/model-store.js';
import { expandInputs } from './translate-files.js';
import { cachedFloats, fakeT0, readImageSet } from './training-images.js';

export interface LatentSetsRequest {
  modelFolder: string;
  sources: string[];
  targets: string[];
  /** the cache goes to outDir/cache */
  outDir: string;
  t0Range: [number, number];
  /** the square side images are read at (the latents are imageSize / the VAE's factor) */
  imageSize: number;
  translationsPerSource: number;
  translationSteps: number;
  text: TextConditioning;
  seed: number;
  /** true for the validation split, by file name (the trainer's isValidation) */
  isValidation: (file: string) => boolean;
  executionProvider?: ExecutionProvider | undefined;
  threads?: number | undefined;
}

export interface LatentSetsEvents {
  onStage?(message: string): void;
  onWarning?(message: string): void;
}

type Item = { file: string; data: Float32Array };

export interface LatentSets {
  model: { name: string; sha256: string };
  dataShape: number[];
  /** σ_VE of the model's time t (for the discriminator's τ range) */
  sigmaAt(t: number): number;
  realTrain: Float32Array[];
  realVal: Float32Array[];
  fakeTrain: Float32Array[];
  fakeVal: Float32Array[];
  /** what the package records about the latent space it was trained in */
  record: {
    folder: string;
    vaeSha256: string;
    scalingFactor: number;
    imageSize: number;
    prompt: string;
    negativePrompt: string;
    cfgScale: number;
  };
}

const sha = (...parts: (string | Float32Array)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return h.digest('hex').slice(0, 24);
};

/**
 * Progress with an ETA ("encoding images with the VAE: 12/60, 1.90 s each, about 1 min left"), a line every 5 s at
 * most and the last: the encoding is the slow part on a CPU.
 */
function etaReporter(what: string, total: number, emit: (line: string) => void): (done: number) => void {
  const started = Date.now();
  let last = 0;
  return (done) => {
    const now = Date.now();
    if (done < total && now - last < 5000) return;
    last = now;
    const each = (now - started) / 1000 / Math.max(done, 1);
    const left = each * (total - done);
    const rest = done === total ? 'done' : left >= 90 ? `about ${Math.round(left / 60)} min left` : `about ${Math.ceil(left)} s left`;
    emit(`${what}: ${done}/${total}, ${each.toFixed(2)} s each, ${rest}`);
  };
}

/** Where an image's latents are cached: by the VAE's digest, the size read at and the pixels. */
const latentPath = (dir: string, vaeSha: string, spec: ImageSpec, item: Item) =>
  join(dir, `${sha(vaeSha, String(spec.width), item.data)}.f32`);

/** Each item's latents (cached by the VAE's digest and the pixels), with a progress line and an ETA. */
async function encodeAll(
  model: LatentModel,
  vaeSha: string,
  items: Item[],
  spec: ImageSpec,
  latentSize: number,
  dir: string,
  events: LatentSetsEvents,
) {
  const report = etaReporter('encoding images with the VAE', items.length, (l) => events.onStage?.(l));
  const out: Float32Array[] = [];
  for (const [i, item] of items.entries()) {
    out.push(
      await cachedFloats(
        latentPath(dir, vaeSha, spec, item),
        latentSize,
        async () => (await encodeLatents(model, { data: item.data, shape: [1, 3, spec.height, spec.width] })).data,
      ),
    );
    report(i + 1);
  }
  return out;
}

/** Unguided latent SDEdit of the sources (each its own t0 over the range: fakeT0), the latents kept (no decoding). */
async function translateAll(
  model: LatentModel,
  modelSha: string,
  req: LatentSetsRequest,
  items: Item[],
  spec: ImageSpec,
  latentSize: number,
  dir: string,
  events: LatentSetsEvents,
  signal?: AbortSignal,
): Promise<Float32Array[][]> {
  const k = req.translationsPerSource;
  if (k === 0) return items.map(() => []);
  const tokenizer = loadClipTokenizer(join(req.modelFolder, 'tokenizer'));
  const report = etaReporter(`unguided latent translations (${k} per source)`, items.length, (l) => events.onStage?.(l));
  const { prompt, negativePrompt, cfgScale } = req.text;
  const out: Float32Array[][] = [];
  for (const [si, item] of items.entries()) {
    const mine: Float32Array[] = [];
    for (let ti = 0; ti < k; ti++) {
      const t0 = fakeT0(req.t0Range, k, si, ti);
      const params = TranslateParamsSchema.parse({ t0, steps: req.translationSteps, dgWeight: 0 });
      const seed = (req.seed + si * k + ti) % 2 ** 32;
      const key = sha(modelSha, item.data, `${t0}:${seed}:${req.translationSteps}:${prompt}:${negativePrompt}:${cfgScale}`);
      const translate = async () => {
        const images = { data: item.data, shape: [1, 3, spec.height, spec.width] };
        return (await translateLatents(model, tokenizer, images, params, req.text, { seeds: [seed], signal })).latents.data;
      };
      mine.push(await cachedFloats(join(dir, `${key}.f32`), latentSize, translate));
    }
    out.push(mine);
    report(si + 1);
  }
  return out;
}

/** Everything the discriminator trainer needs of a latent model's data (the model is opened here and closed). */
export async function latentTrainingSets(req: LatentSetsRequest, events: LatentSetsEvents = {}, signal?: AbortSignal): Promise<LatentSets> {
  const model = await loadLatentModel(req.modelFolder, {
    executionProvider: req.executionProvider,
    threads: req.threads,
    onWarning: events.onWarning,
  });
  try {
    const spec: ImageSpec = { channels: 3, height: req.imageSize, width: req.imageSize, valueRange: [-1, 1] };
    const [sourceFiles, targetFiles] = [await expandInputs(req.sources), await expandInputs(req.targets)];
    events.onStage?.(`reading ${sourceFiles.length} source and ${targetFiles.length} target images at ${req.imageSize}×${req.imageSize}`);
    const sources = await readImageSet(sourceFiles, spec, events.onWarning);
    const targets = await readImageSet(targetFiles, spec, events.onWarning);
    if (sources.length < 2 || targets.length < 2)
      throw new Error('need at least two readable images in each of the source and target folders');
    const [vaeSha, unetSha] = [await folderDigest(join(req.modelFolder, 'vae_encoder')), await folderDigest(join(req.modelFolder, 'unet'))];
    const cache = join(req.outDir, 'cache');
    await mkdir(join(cache, 'latents'), { recursive: true });
    // the latents' shape: [channels, side / factor, side / factor]
    // (kept in the cache, so the first target is not encoded twice)
    const probe: Tensor = await encodeLatents(model, { data: targets[0]!.data, shape: [1, 3, spec.height, spec.width] });
    const latentSize = probe.data.length;
    await writeFileAtomic(
      latentPath(join(cache, 'latents'), vaeSha, spec, targets[0]!),
      new Uint8Array(probe.data.buffer, probe.data.byteOffset, probe.data.byteLength),
    );
    const realZ = await encodeAll(model, vaeSha, targets, spec, latentSize, join(cache, 'latents'), events);
    const srcZ = await encodeAll(model, vaeSha, sources, spec, latentSize, join(cache, 'latents'), events);
    await mkdir(join(cache, 'translations'), { recursive: true });
    const fakes = await translateAll(model, unetSha, req, sources, spec, latentSize, join(cache, 'translations'), events, signal);
    const split = <T>(items: Item[], values: T[]) => ({
      train: values.filter((_, i) => !req.isValidation(items[i]!.file)),
      val: values.filter((_, i) => req.isValidation(items[i]!.file)),
    });
    const real = split(targets, realZ);
    const src = split(
      sources,
      srcZ.map((z, i) => [z, ...fakes[i]!]),
    );
    const schedule = modelSchedule(model.folder.schedule);
    return {
      model: { name: basename(resolve(req.modelFolder)), sha256: unetSha },
      dataShape: probe.shape.slice(1),
      sigmaAt: (t) => schedule.sigmaAt(t),
      realTrain: real.train,
      realVal: real.val,
      fakeTrain: src.train.flat(),
      fakeVal: src.val.flat(),
      record: {
        folder: basename(resolve(req.modelFolder)),
        vaeSha256: vaeSha,
        scalingFactor: model.folder.vaeScalingFactor,
        imageSize: req.imageSize,
        ...req.text,
      },
    };
  } finally {
    await model.dispose();
  }
}
