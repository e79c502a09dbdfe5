/**
 * Translating files with a Stable Diffusion-family model folder (issue 27): each image at its own aspect —
 * scaled so its longest side is at most `maxSide`, both sides multiples of 8 (the VAE's factor) — SDEdit in
 * latent space with the prompt, negative prompt and CFG scale, written as PNG with A1111's parameters text
 * (prompt, "Negative prompt:", settings) and recorded in the gallery like any result.
 */
import { mkdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { TranslateParamsSchema, formatParametersLine, type TranslateParams, type TranslateParamsInput } from '../../shared/params.js';
import { latentSize } from '../../shared/sizes.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import { encodePixelsPng, readImageAndBytes, toPixels, writeFileAtomic, type ImageSpec } from '../engine/io/image-io.js';
import { latentModelName } from '../engine/models/diffusers-folder.js';
import { loadLatentModel, type LatentModel } from '../engine/models/latent-model.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { translateLatentBatch } from '../engine/sampling/latent-translate.js';
import { loadClipTokenizer, type ClipTokenizer } from '../engine/text/clip-tokenizer.js';
import { safeFileStem } from './folders.js';
import type { Gallery } from './gallery.js';
import { folderDigest } from './scale-out/model-store.js';
import { expandInputs, sha256File, sha256Hex } from './translate-files.js';
import { freeName, type FileError } from './translate-outputs.js';
import { loadDiscriminator, type LoadedDiscriminator } from '../engine/models/discriminator.js';

export interface LatentFilesRequest {
  inputs: string[];
  outDir: string;
  params: TranslateParamsInput;
  /** the diffusers ONNX folder */
  modelFolder: string;
  /** a discriminator trained on this model's latents (train-discriminator --model <folder>): DG with params.dgWeight */
  discriminator?: string | undefined;
  /** outputs named after their inputs (cat.jpg → cat.png), never over an existing file */
  keepNames?: boolean | undefined;
  /** the longest side images are translated at (default 512, SD 1.x's training size) */
  maxSide?: number | undefined;
  executionProvider?: ExecutionProvider | undefined;
  threads?: number | undefined;
  gallery?: Gallery | undefined;
  sourceNames?: Record<string, string> | undefined;
}

export interface LatentFilesEvents {
  onStart?(info: { total: number; model: string; provider: string }): void;
  onStep?(info: { done: number; total: number; step: number; steps: number }): void;
  onResult?(r: { source: string; output: string; width: number; height: number; galleryId: number | undefined }): void;
  onError?(e: FileError): void;
  /** what was done to an image that the user should know (its size changed) */
  onNote?(message: string): void;
  onWarning?(message: string): void;
}

/** What translating one image needs of its run. */
interface LatentRun {
  req: LatentFilesRequest;
  events: LatentFilesEvents;
  params: TranslateParams;
  model: LatentModel;
  tokenizer: ClipTokenizer;
  discriminator: LoadedDiscriminator | undefined;
  modelInfo: { name: string; manifest: string; sha256: string };
  runId: number | undefined;
  /** the output names this run has given out */
  taken: Set<string>;
  total: number;
  signal: AbortSignal | undefined;
}

/** One image: sized to its aspect, translated, written with its parameters text and sidecar, recorded in the gallery. */
async function translateOne(r: LatentRun, file: string, index: number): Promise<string> {
  const { req, events, params, modelInfo } = r;
  const seed = (params.seed + index) % 2 ** 32;
  const sourceName = req.sourceNames?.[file] ?? basename(file);
  const meta = await sharp(file).metadata();
  const [w, h] = (meta.orientation ?? 1) >= 5 ? [meta.height ?? 8, meta.width ?? 8] : [meta.width ?? 8, meta.height ?? 8];
  const size = latentSize(w, h, req.maxSide);
  if (size.width !== w || size.height !== h)
    events.onNote?.(
      `${sourceName}: ${w}×${h} translated at ${size.width}×${size.height} (its aspect; sides multiples of 8, the longest ≤ ${req.maxSide ?? 512})`,
    );
  const spec: ImageSpec = { channels: 3, height: size.height, width: size.width, valueRange: [-1, 1] };
  const { data, bytes } = await readImageAndBytes(file, spec, 'stretch');
  const out = await translateLatentBatch(
    r.model,
    r.tokenizer,
    { data, shape: [1, 3, size.height, size.width] },
    params,
    { prompt: params.prompt, negativePrompt: params.negativePrompt, cfgScale: params.cfgScale },
    {
      seeds: [seed],
      critic: r.discriminator ? { critic: r.discriminator.critic, dataShape: r.discriminator.manifest.dataShape } : undefined,
      signal: r.signal,
      onStep: (s) => events.onStep?.({ done: index, total: r.total, step: s.stepIndex + 1, steps: s.totalSteps }),
    },
  );
  for (const warning of out.warnings) events.onWarning?.(warning);
  const line = formatParametersLine(
    { ...params, seed },
    {
      'CFG scale': params.cfgScale,
      Model: modelInfo.name,
      'Model hash': modelInfo.sha256.slice(0, 10),
      Size: `${size.width}x${size.height}`,
      Version: `dg-studio ${ENGINE_VERSION}`,
    },
  );
  // A1111's layout: the prompt, "Negative prompt: …", the settings line
  const text = `${params.prompt}\nNegative prompt: ${params.negativePrompt}\n${line}\nSource: ${sourceName}`;
  const record = {
    source: sourceName,
    sourceSha256: sha256Hex(bytes),
    seed,
    params: { ...params, seed },
    model: { name: modelInfo.name, sha256: modelInfo.sha256 },
    engineVersion: ENGINE_VERSION,
  };
  const png = await encodePixelsPng(
    toPixels(out.images.data, spec),
    { width: size.width, height: size.height, channels: 3 },
    { parameters: text, 'dg-studio': JSON.stringify(record) },
  );
  const inputStem = safeFileStem(basename(sourceName, extname(sourceName)));
  const stem = req.keepNames ? inputStem : `${inputStem}-t${params.t0}-cfg${params.cfgScale}-${seed}`;
  const name = await freeName(req.outDir, stem, r.taken);
  if (req.keepNames && name !== `${stem}.png`)
    events.onWarning?.(`"${stem}.png" is taken in ${req.outDir} (an earlier run or another input of that name): ${file} → ${name}`);
  const output = join(resolve(req.outDir), name);
  await writeFileAtomic(output, png);
  const galleryId =
    req.gallery && r.runId !== undefined
      ? await req.gallery.addOutput(r.runId, { png, sourcePath: resolve(file), sourceName, seed })
      : undefined;
  await writeFileAtomic(output.replace(/\.png$/, '.json'), JSON.stringify({ ...record, galleryId, runId: r.runId }, null, 2));
  events.onResult?.({ source: file, output, ...size, galleryId });
  return output;
}

export async function translateLatentFiles(
  req: LatentFilesRequest,
  events: LatentFilesEvents = {},
  signal?: AbortSignal,
): Promise<{ outputs: string[]; errors: FileError[] }> {
  const params = TranslateParamsSchema.parse(req.params);
  const files = await expandInputs(req.inputs);
  const session = { executionProvider: req.executionProvider, threads: req.threads, onWarning: events.onWarning };
  const model = await loadLatentModel(req.modelFolder, session);
  let discriminator: LoadedDiscriminator | undefined;
  try {
    discriminator = req.discriminator ? await latentDiscriminator(req.discriminator, model, events) : undefined;
    const tokenizer = loadClipTokenizer(join(req.modelFolder, 'tokenizer'));
    const name = latentModelName(req.modelFolder, model.folder.defaults);
    const modelInfo = { name, manifest: resolve(req.modelFolder), sha256: await folderDigest(join(req.modelFolder, 'unet')) };
    await mkdir(req.outDir, { recursive: true });
    events.onStart?.({ total: files.length, model: name, provider: model.sessions.unet.provider });
    const inputs = files.map((f) => resolve(f));
    const discriminatorInfo = discriminator
      ? { name: discriminator.manifest.name, manifest: discriminator.manifestPath, sha256: await sha256File(discriminator.manifestPath) }
      : null;
    const runId = req.gallery?.startRun({
      params,
      inputs,
      model: modelInfo,
      discriminator: discriminatorInfo,
      engineVersion: ENGINE_VERSION,
    });
    const run: LatentRun = {
      req,
      events,
      params,
      model,
      tokenizer,
      discriminator,
      modelInfo,
      runId,
      taken: new Set(),
      total: files.length,
      signal,
    };
    const outputs: string[] = [];
    const errors: FileError[] = [];
    let status: 'done' | 'failed' | 'cancelled' = 'done';
    try {
      for (const [index, file] of files.entries()) {
        try {
          outputs.push(await translateOne(run, file, index));
        } catch (e) {
          if ((e as Error).name === 'CancelledError') throw e;
          const err = { file, message: (e as Error).message };
          errors.push(err);
          const seed = (params.seed + index) % 2 ** 32;
          if (req.gallery && runId !== undefined) req.gallery.addError(runId, resolve(file), seed, err.message, req.sourceNames?.[file]);
          events.onError?.(err);
        }
      }
    } catch (e) {
      status = (e as Error).name === 'CancelledError' ? 'cancelled' : 'failed';
      throw e;
    } finally {
      if (req.gallery && runId !== undefined) req.gallery.finishRun(runId, status);
    }
    return { outputs, errors };
  } finally {
    await discriminator?.dispose();
    await model.dispose();
  }
}

/** A discriminator for DG in this model's latent space: its input must have the latents' channels (checked again per image). */
export async function latentDiscriminator(
  path: string,
  model: LatentModel,
  events: Pick<LatentFilesEvents, 'onWarning'>,
): Promise<LoadedDiscriminator> {
  // free spatial size: it guides photos of any aspect, whose latents differ from the square it was trained on
  const d = await loadDiscriminator(path, undefined, {}, null, true);
  const training =
    'training' in d.manifest ? (d.manifest.training as { latentModel?: { folder?: string; vaeSha256?: string } }) : undefined;
  const trainedOn = training?.latentModel;
  if (d.manifest.dataShape[0] !== model.io.latentChannels) {
    await d.dispose();
    throw new Error(
      `the discriminator "${path}" takes ${d.manifest.dataShape.join('×')} inputs, not ${model.io.latentChannels}-channel latents: it was trained on ${trainedOn ? 'another latent model' : 'images'}; train one with train-discriminator --model ${model.folder.dir}`,
    );
  }
  if (!trainedOn) events.onWarning?.(`the discriminator "${path}" does not say which latent model it was trained on`);
  else if (trainedOn.vaeSha256 && trainedOn.vaeSha256 !== (await folderDigest(join(model.folder.dir, 'vae_encoder'))))
    events.onWarning?.(
      `the discriminator "${path}" was trained on the latents of another VAE ("${trainedOn.folder}"): its guidance may not fit`,
    );
  return d;
}
