/**
 * float16 tensors at the ONNX Runtime boundary: models exported in half precision (most Stable Diffusion-family
 * folders made for GPUs — DirectML, CUDA, CoreML) take and give float16 tensors, which onnxruntime-node carries as
 * their raw bits (Uint16Array). The engine computes in float32: feeds are narrowed (round to nearest even, by
 * @petamoriken/float16) and outputs widened (a 65 536-entry table of every half value, filled once by the same
 * library) where the file says float16.
 */
import { Float16Array } from '@petamoriken/float16';
import { ort, tensorMetadata, type OrtSession } from './session.js';

let widen: Float32Array | null = null;

/** float32 values as float16 bits (round to nearest even; beyond ±65504: ±Infinity). */
export function toHalfBits(values: Float32Array): Uint16Array {
  return new Uint16Array(new Float16Array(values).buffer);
}

/** float16 bits as float32 values (exact: every half value is a float32). */
export function fromHalfBits(bits: Uint16Array): Float32Array {
  if (!widen) widen = Float32Array.from(new Float16Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer));
  const table = widen;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** A float feed for `input` of the session in the type the file declares: float32 as given, float16 narrowed. */
export function floatFeed(s: OrtSession, input: string, values: Float32Array, dims: readonly number[]): ort.Tensor {
  const meta = tensorMetadata(s, 'input', input);
  return meta.isTensor && meta.type === 'float16'
    ? new ort.Tensor('float16', toHalfBits(values), dims)
    : new ort.Tensor('float32', values, dims);
}

/** An output's values as float32, whatever floating type the file gives (float16 widened). */
export function floatValues(t: ort.Tensor, where: string): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  // the raw bits, unless the runtime has a native Float16Array (then its values)
  if (t.type === 'float16') return t.data instanceof Uint16Array ? fromHalfBits(t.data) : Float32Array.from(t.data as ArrayLike<number>);
  throw new Error(`${where}: an output of type ${t.type}, where a floating-point tensor was expected`);
}
