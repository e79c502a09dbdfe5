/**
 * The safetensors format (huggingface/safetensors): an 8-byte little-endian header length, a
 * JSON header {name: {dtype, shape, data_offsets}, __metadata__: {string: string}}, then the
 * raw little-endian tensor bytes. Score-model checkpoints of both trainers (the app's and
 * tools/train-score-model.py) use it, so weights move both ways. F32 and BF16 (Adam moments)
 * are read and written; BF16 is rounded to nearest even on write.
 */

export type StDType = 'F32' | 'BF16';

export interface StTensor {
  dtype: StDType;
  shape: number[];
  data: Float32Array;
}

export interface StFile {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<StDType, number> = { F32: 4, BF16: 2 };

/** float32 → bfloat16 bits, round to nearest even (NaN stays NaN). */
function toBf16(src: Float32Array): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i]!;
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

function fromBf16(bytes: Uint8Array): Float32Array {
  const n = bytes.length >> 1;
  const out = new Float32Array(n);
  const u = new Uint32Array(out.buffer);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
  return out;
}

export function encodeSafetensors(file: StFile): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(file.metadata).length) header['__metadata__'] = file.metadata;
  let offset = 0;
  const parts: Uint8Array[] = [];
  for (const [name, t] of file.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`safetensors: "${name}" has ${t.data.length} values for shape [${t.shape}]`);
    const bytes = t.dtype === 'F32' ? new Uint8Array(Float32Array.from(t.data).buffer) : new Uint8Array(toBf16(t.data).buffer);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keep the data 8-byte aligned
  const head = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  return Buffer.concat([len, head, ...parts]);
}

/** Parse a safetensors buffer; `source` names it in errors. */
export function decodeSafetensors(buf: Uint8Array, source: string): StFile {
  const fail = (why: string) => new Error(`cannot read "${source}" as safetensors: ${why}`);
  if (buf.length < 8) throw fail(`the file has ${buf.length} bytes, not even a header`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headLen = Number(dv.getBigUint64(0, true));
  if (headLen > buf.length - 8 || headLen > 100 * 2 ** 20)
    throw fail(`header length ${headLen} does not fit the file (${buf.length} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(buf.subarray(8, 8 + headLen)).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw fail(`the header is not JSON (${(e as Error).message})`);
  }
  const data = buf.subarray(8 + headLen);
  const tensors = new Map<string, StTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const info = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (info.dtype !== 'F32' && info.dtype !== 'BF16') throw fail(`tensor "${name}" has dtype ${info.dtype}; only F32 and BF16 are read`);
    const [a, b] = info.data_offsets ?? [NaN, NaN];
    const shape = info.shape ?? [];
    const n = shape.reduce((p, q) => p * q, 1);
    if (!(a >= 0 && b <= data.length && b - a === n * BYTES[info.dtype]))
      throw fail(`tensor "${name}" has bad offsets [${a}, ${b}] for shape [${shape}]`);
    const bytes = data.subarray(a, b);
    const values = info.dtype === 'F32' ? new Float32Array(Uint8Array.from(bytes).buffer) : fromBf16(bytes);
    tensors.set(name, { dtype: info.dtype, shape, data: values });
  }
  return { tensors, metadata };
}
