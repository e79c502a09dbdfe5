/**
 * A Stable Diffusion-family model opened from its diffusers ONNX folder (issue 27, dg-math §11): one ONNX
 * Runtime session per part, created once and kept, and the I/O variants real exports use — read from the
 * files and checked against each other before anything runs, every mismatch named in words:
 *
 * - text encoder `input_ids` int32 (diffusers' converter) or int64 (Optimum); hidden size = the UNet's
 *   `encoder_hidden_states` width (768 for SD 1.x, 1024 for SD 2.x);
 * - UNet `timestep` float32, int64 or float16, as [B], [1] or a scalar; `sample` and `out_sample` with the
 *   VAE's latent channels;
 * - every float tensor float32 or float16 (half-precision exports, made for GPUs; engine/onnx/float16.ts);
 * - VAE encoder output `latent_sample` (drawn inside the graph) or `latent_parameters` (mean and log-variance;
 *   the mean is taken), decoder input `latent_sample`.
 */
import { createSession, expectDType, tensorMetadata, type OrtSession, type SessionOptions } from '../onnx/session.js';
import { readDiffusersFolder, type DiffusersFolder } from './diffusers-folder.js';

export interface LatentModelIo {
  inputIds: 'int32' | 'int64';
  /** the UNet's timestep: its type, and whether it is a scalar, [1] or one per batch item */
  timestep: { type: 'float32' | 'int64' | 'float16'; shape: 'scalar' | 'one' | 'batch' };
  /** floating type the UNet takes its sample in */
  sampleType: 'float32' | 'float16';
  textHidden: number | null;
  latentChannels: number;
  encoderOutput: 'latent_sample' | 'latent_parameters';
}

export interface LatentModel {
  folder: DiffusersFolder;
  io: LatentModelIo;
  sessions: { unet: OrtSession; vaeEncoder: OrtSession; vaeDecoder: OrtSession; textEncoder: OrtSession };
  dispose(): Promise<void>;
}

/** every float tensor of a part may be float32 or float16 (a half-precision export): the engine converts at the boundary */
const FLOATS = ['float32', 'float16'];

const dim = (d: number | string | undefined) => (typeof d === 'number' && d > 0 ? d : null);

/** Open a diffusers ONNX folder: its configs (readDiffusersFolder), a session per part, the I/O checked. */
export async function loadLatentModel(dir: string, opts: SessionOptions = {}): Promise<LatentModel> {
  const folder = readDiffusersFolder(dir);
  const opened: OrtSession[] = [];
  const open = async (file: string) => {
    const s = await createSession(file, file, opts);
    opened.push(s);
    return s;
  };
  try {
    const textEncoder = await open(folder.onnx.text_encoder);
    const unet = await open(folder.onnx.unet);
    const vaeEncoder = await open(folder.onnx.vae_encoder);
    const vaeDecoder = await open(folder.onnx.vae_decoder);
    const io = checkIo({ textEncoder, unet, vaeEncoder, vaeDecoder });
    const sessions = { unet, vaeEncoder, vaeDecoder, textEncoder };
    return {
      folder,
      io,
      sessions,
      async dispose() {
        await Promise.all(opened.map((s) => s.session.release()));
      },
    };
  } catch (e) {
    await Promise.all(opened.map((s) => s.session.release().catch(() => {})));
    throw e;
  }
}

function checkIo(s: { textEncoder: OrtSession; unet: OrtSession; vaeEncoder: OrtSession; vaeDecoder: OrtSession }): LatentModelIo {
  const inputIds = expectDType(s.textEncoder, 'input', 'input_ids', ['int32', 'int64']) as 'int32' | 'int64';
  expectDType(s.textEncoder, 'output', 'last_hidden_state', FLOATS);
  const hidden = tensorMetadata(s.textEncoder, 'output', 'last_hidden_state');
  const textHidden = hidden.isTensor ? dim(hidden.shape[2]) : null;

  const sampleType = expectDType(s.unet, 'input', 'sample', ['float32', 'float16']) as 'float32' | 'float16';
  const sample = tensorMetadata(s.unet, 'input', 'sample');
  const ts = tensorMetadata(s.unet, 'input', 'timestep');
  const tsType = expectDType(s.unet, 'input', 'timestep', ['float32', 'int64', 'float16']) as 'float32' | 'int64' | 'float16';
  const tsShape = ts.isTensor ? ts.shape : [];
  if (tsShape.length > 1)
    throw new Error(
      `ONNX model "${s.unet.source}": input "timestep" has shape [${tsShape.join(', ')}]; a scalar, [1] or [batch] was expected`,
    );
  const timestep = {
    type: tsType,
    shape: tsShape.length === 0 ? ('scalar' as const) : tsShape[0] === 1 ? ('one' as const) : ('batch' as const),
  };
  expectDType(s.unet, 'input', 'encoder_hidden_states', FLOATS);
  const ehs = tensorMetadata(s.unet, 'input', 'encoder_hidden_states');
  expectDType(s.unet, 'output', 'out_sample', FLOATS);
  const unetHidden = ehs.isTensor ? dim(ehs.shape[2]) : null;
  if (textHidden !== null && unetHidden !== null && textHidden !== unetHidden)
    throw new Error(
      `the text encoder "${s.textEncoder.source}" gives states of width ${textHidden}, but the UNet "${s.unet.source}" takes encoder_hidden_states of width ${unetHidden} (SD 1.x: 768, SD 2.x: 1024): the parts come from different models`,
    );

  const encoderOutput = s.vaeEncoder.session.outputNames.includes('latent_parameters')
    ? ('latent_parameters' as const)
    : s.vaeEncoder.session.outputNames.includes('latent_sample')
      ? ('latent_sample' as const)
      : null;
  if (!encoderOutput)
    throw new Error(
      `ONNX model "${s.vaeEncoder.source}" is not a VAE encoder: it has no output "latent_sample" or "latent_parameters" (its outputs: ${s.vaeEncoder.session.outputNames.join(', ')})`,
    );
  expectDType(s.vaeEncoder, 'input', 'sample', FLOATS);
  expectDType(s.vaeEncoder, 'output', encoderOutput, FLOATS);
  expectDType(s.vaeDecoder, 'input', 'latent_sample', FLOATS);
  const dec = tensorMetadata(s.vaeDecoder, 'input', 'latent_sample');
  expectDType(s.vaeDecoder, 'output', 'sample', FLOATS);
  const unetChannels = sample.isTensor ? dim(sample.shape[1]) : null;
  const decChannels = dec.isTensor ? dim(dec.shape[1]) : null;
  const encMeta = tensorMetadata(s.vaeEncoder, 'output', encoderOutput);
  const encChannels = encMeta.isTensor ? dim(encMeta.shape[1]) : null;
  const fromEncoder = encChannels === null ? null : encoderOutput === 'latent_parameters' ? encChannels / 2 : encChannels;
  const channels = [unetChannels, decChannels, fromEncoder].filter((c): c is number => c !== null);
  if (new Set(channels).size > 1)
    throw new Error(
      `the latent channels disagree: the UNet "${s.unet.source}" takes ${unetChannels ?? '?'}, the VAE decoder ${decChannels ?? '?'}, the VAE encoder gives ${fromEncoder ?? '?'}: the parts come from different models`,
    );
  return { inputIds, timestep, sampleType, textHidden: textHidden ?? unetHidden, latentChannels: channels[0] ?? 4, encoderOutput };
}
