/**
 * SDEdit in the latent space of a Stable Diffusion-family model (issue 27, dg-math §11): encode the source
 * with the VAE (the posterior mean), run the studio's own samplers on the latents with the UNet as an ε (or
 * v) network under classifier-free guidance, decode. DG hooks in exactly as for a pixel model: a discriminator
 * trained on this model's latents adds w·∇_z log(d/(1−d)) to the score of the CFG-combined prediction.
 */
import type { TranslateParams } from '../../../shared/params.js';
import type { LatentModel } from '../models/latent-model.js';
import { floatFeed, floatValues, toHalfBits } from '../onnx/float16.js';
import { ort } from '../onnx/session.js';
import { BatchRng } from '../rng.js';
import type { Tensor } from '../tensor.js';
import type { ClipTokenizer } from '../text/clip-tokenizer.js';
import { canonicalDenoiser, type NetworkCall } from './denoiser.js';
import type { Critic, DgDiagnostics } from './guidance.js';
import { modelSchedule } from './model-schedule.js';
import type { StepInfo } from './samplers.js';
import { sdedit, sdeditParamsOf } from './sdedit.js';
import { guidanceOf } from './translate.js';

/** What a text-conditioned run adds to the translation parameters. */
export interface TextConditioning {
  prompt: string;
  negativePrompt: string;
  /** classifier-free guidance scale g; ≤ 1 runs the conditional prediction alone (SD-Turbo) */
  cfgScale: number;
}

async function run(s: { session: ort.InferenceSession }, feeds: Record<string, ort.Tensor>, output: string): Promise<ort.Tensor> {
  const out = await s.session.run(feeds);
  return out[output]!;
}

/** An output as the engine's float32 tensor (a float16 export's widened). */
const asTensor = (t: ort.Tensor, where: string): Tensor => ({ data: floatValues(t, where), shape: t.dims as number[] });

/** dg-math §11: z = s·mean(E(x)) — the VAE posterior's mean (the first half of `latent_parameters`). */
export async function encodeLatents(model: LatentModel, images: Tensor): Promise<Tensor> {
  const enc = model.sessions.vaeEncoder;
  const out = await run(enc, { sample: floatFeed(enc, 'sample', images.data, images.shape) }, model.io.encoderOutput);
  const [n, c, h, w] = out.dims as [number, number, number, number];
  const channels = model.io.encoderOutput === 'latent_parameters' ? c / 2 : c;
  const z = new Float32Array(n * channels * h * w);
  const src = floatValues(out, enc.source);
  const plane = channels * h * w;
  for (let i = 0; i < n; i++) for (let k = 0; k < plane; k++) z[i * plane + k] = src[i * c * h * w + k]! * model.folder.vaeScalingFactor;
  return { data: z, shape: [n, channels, h, w] };
}

/** dg-math §11: x = D(z/s). */
export async function decodeLatents(model: LatentModel, z: Tensor): Promise<Tensor> {
  const scaled = z.data.map((v) => v / model.folder.vaeScalingFactor);
  const dec = model.sessions.vaeDecoder;
  return asTensor(await run(dec, { latent_sample: floatFeed(dec, 'latent_sample', scaled, z.shape) }, 'sample'), dec.source);
}

/** The text encoder's `last_hidden_state` of each prompt: [prompts, 77, hidden]; `truncated` names the prompts cut to fit. */
export async function textStates(
  model: LatentModel,
  tokenizer: ClipTokenizer,
  prompts: string[],
): Promise<{ states: Tensor; truncated: string[] }> {
  const encoded = prompts.map((p) => tokenizer.encode(p));
  const flat = encoded.flatMap((e) => e.ids);
  const ids =
    model.io.inputIds === 'int64'
      ? new ort.Tensor('int64', BigInt64Array.from(flat, BigInt), [prompts.length, tokenizer.length])
      : new ort.Tensor('int32', Int32Array.from(flat), [prompts.length, tokenizer.length]);
  const states = asTensor(
    await run(model.sessions.textEncoder, { input_ids: ids }, 'last_hidden_state'),
    model.sessions.textEncoder.source,
  );
  return { states, truncated: prompts.filter((_, i) => encoded[i]!.truncated) };
}

/** The UNet's timestep feed for one step of the batch (the type and shape its export takes). */
function timestepFeed(model: LatentModel, steps: Float64Array): ort.Tensor {
  const { type, shape } = model.io.timestep;
  const values = shape === 'batch' ? Array.from(steps) : [steps[0]!];
  const dims = shape === 'scalar' ? [] : [values.length];
  if (type === 'int64')
    return new ort.Tensor(
      'int64',
      BigInt64Array.from(values, (v) => BigInt(Math.round(v))),
      dims,
    );
  if (type === 'float16') return new ort.Tensor('float16', toHalfBits(Float32Array.from(values)), dims);
  return new ort.Tensor('float32', Float32Array.from(values), dims);
}

/**
 * dg-math §11: classifier-free guidance as one network call of the sampler: ε̃ = ε(z, t, ∅) + g·(ε(z, t, c) − ε(z, t, ∅)),
 * the two predictions in one UNet batch; `cond`/`uncond` are one prompt's states, repeated for every item.
 */
export function cfgNetwork(model: LatentModel, cond: Tensor, uncond: Tensor, g: number): NetworkCall {
  const guided = g > 1;
  const rows = cond.data.length;
  return async (x, time) => {
    const n = x.shape[0]!;
    const copies = guided ? 2 : 1;
    const sample = new Float32Array(x.data.length * copies);
    for (let k = 0; k < copies; k++) sample.set(x.data, k * x.data.length);
    const ehs = new Float32Array(rows * n * copies);
    for (let i = 0; i < n; i++) {
      ehs.set(cond.data, i * rows);
      if (guided) ehs.set(uncond.data, (n + i) * rows);
    }
    const t = guided ? Float64Array.from([...time, ...time]) : time;
    const unet = model.sessions.unet;
    const out = await run(
      unet,
      {
        sample: floatFeed(unet, 'sample', sample, [n * copies, ...x.shape.slice(1)]),
        timestep: timestepFeed(model, t),
        encoder_hidden_states: floatFeed(unet, 'encoder_hidden_states', ehs, [n * copies, ...cond.shape.slice(1)]),
      },
      'out_sample',
    );
    const e = floatValues(out, unet.source);
    if (!guided) return { data: e.slice(), shape: x.shape };
    const m = x.data.length;
    const combined = new Float32Array(m);
    for (let k = 0; k < m; k++) combined[k] = e[m + k]! + g * (e[k]! - e[m + k]!);
    return { data: combined, shape: x.shape };
  };
}

export interface LatentTranslateOptions {
  seeds: number[];
  /**
   * a latent discriminator (trained on this model's latents: train-discriminator --model <folder>): DG with
   * params.dgWeight, its gradient taken in latent space; its input shape must be the latents'
   */
  critic?: { critic: Critic; dataShape: number[] } | undefined;
  onDiagnostics?: ((d: DgDiagnostics) => void) | undefined;
  onStep?: ((s: StepInfo) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * SDEdit of a batch of images (N×3×H×W in [-1, 1], H and W multiples of 8) in the model's latent space, up to
 * the translated latents (a discriminator's fakes need no pixels).
 */
export async function translateLatents(
  model: LatentModel,
  tokenizer: ClipTokenizer,
  images: Tensor,
  params: TranslateParams,
  text: TextConditioning,
  opts: LatentTranslateOptions,
): Promise<{ latents: Tensor; warnings: string[] }> {
  const z = await encodeLatents(model, images);
  const shape = z.shape.slice(1);
  const guideWarnings: string[] = [];
  if (opts.critic && opts.critic.dataShape[0] !== shape[0])
    throw new Error(
      `the discriminator "${opts.critic.critic.name}" takes ${opts.critic.dataShape[0]}-channel latents, this model's have ${shape[0]}: it was trained on another model's latents`,
    );
  // a fully convolutional discriminator guides latents of another size too (loaded with a free spatial size)
  if (opts.critic && opts.critic.dataShape.join('×') !== shape.join('×'))
    guideWarnings.push(
      `the discriminator "${opts.critic.critic.name}" was trained on latents of ${opts.critic.dataShape.join('×')}; this image's are ${shape.join('×')} (${images.shape[3]}×${images.shape[2]} px): it guides them as a convolutional net at a size it has not seen`,
    );
  const { states, truncated } = await textStates(model, tokenizer, [text.prompt, text.negativePrompt]);
  const row = states.data.length / 2;
  const cond = { data: states.data.subarray(0, row), shape: [1, ...states.shape.slice(1)] };
  const uncond = { data: states.data.subarray(row), shape: [1, ...states.shape.slice(1)] };
  const schedule = modelSchedule(model.folder.schedule);
  const denoiser = canonicalDenoiser(cfgNetwork(model, cond, uncond, text.cfgScale), {
    name: model.folder.dir,
    prediction: model.folder.scheduler.prediction_type === 'v_prediction' ? 'v' : 'eps',
    schedule,
    timeInput: { kind: 'step', scale: 1 },
    preconditioning: { kind: 'none' },
  });
  const latents = await sdedit(denoiser, schedule, z, sdeditParamsOf(params), {
    rng: new BatchRng(opts.seeds),
    guidance: guidanceOf(params, z.shape[0]!, { critic: opts.critic?.critic, onDiagnostics: opts.onDiagnostics }),
    onStep: opts.onStep,
    signal: opts.signal,
  });
  const warnings = [
    ...guideWarnings,
    ...truncated.map((p) => `the prompt "${p.slice(0, 60)}…" is longer than ${tokenizer.length - 2} tokens and was cut to fit`),
  ];
  return { latents, warnings };
}

/** translateLatents, decoded: the translated images with their latents. */
export async function translateLatentBatch(
  model: LatentModel,
  tokenizer: ClipTokenizer,
  images: Tensor,
  params: TranslateParams,
  text: TextConditioning,
  opts: LatentTranslateOptions,
): Promise<{ images: Tensor; latents: Tensor; warnings: string[] }> {
  const { latents, warnings } = await translateLatents(model, tokenizer, images, params, text, opts);
  return { images: await decodeLatents(model, latents), latents, warnings };
}
