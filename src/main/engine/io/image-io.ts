/**
 * Image I/O through sharp: any image a user drops in becomes a CHW Float32 tensor in the
 * model's value range, and results become PNGs with their parameters in text chunks
 * (A1111's "parameters" key, plus the full JSON under "dg-studio").
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import extractChunks from 'png-chunks-extract';
import encodeChunks from 'png-chunks-encode';
import type { PngChunk } from 'png-chunks-extract';
import * as pngText from 'png-chunk-text';

/** Refuse images above this many pixels before decoding (decompression bombs). */
export const MAX_INPUT_PIXELS = 64 * 1024 * 1024;

export interface ImageSpec {
  channels: 1 | 3;
  height: number;
  width: number;
  valueRange: readonly [number, number];
}

export class ImageReadError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`cannot read "${basename(path)}": ${reason}`);
    this.name = 'ImageReadError';
  }
}

/** A decoder's error in words for the person: what is wrong with the file, not the library's message. */
export function explainSharpError(e: unknown): string {
  const msg = String((e as Error)?.message ?? e);
  if (/unsupported image format|bad seek|not a known file format/i.test(msg))
    return 'not an image sharp can decode (unsupported or damaged file)';
  if (/pixel limit/i.test(msg)) return `the image is larger than ${MAX_INPUT_PIXELS} pixels; resize it first`;
  if (/premature end|truncated|unexpected end|read error|corrupt/i.test(msg))
    return 'the file is truncated or corrupt (it ends early or its data is damaged): open it in an image viewer, or export it again';
  if (/missing|ENOENT|no such file/i.test(msg)) return 'file not found';
  if (/empty/i.test(msg)) return 'the file is empty';
  return msg.split('\n')[0]!;
}

/**
 * How an image whose size or aspect is not the model's is brought to it: `crop` covers the model's frame
 * and cuts the overhang at the centre (the output is that square), `pad` fits the whole image inside and
 * fills the rest with the background (white), `stretch` resizes it to the frame whatever its aspect. With
 * `pad` and `stretch` the output is brought back to the source's aspect (restoreAspect).
 */
export type Fit = 'crop' | 'pad' | 'stretch';
export const FITS: readonly Fit[] = ['crop', 'pad', 'stretch'];

/** Where the image lies in the model's frame, and the source's size, for restoreAspect. */
export interface FitGeometry {
  fit: Fit;
  sourceWidth: number;
  sourceHeight: number;
  /** the image's box inside the frame (the whole frame for crop and stretch) */
  box: { left: number; top: number; width: number; height: number };
}

/** The box a `pad` fit puts a w×h image in, inside a W×H frame: scaled to fit, centred (rounded down). */
export function padBox(w: number, h: number, W: number, H: number): FitGeometry['box'] {
  const s = Math.min(W / w, H / h);
  const width = Math.max(1, Math.min(W, Math.round(w * s)));
  const height = Math.max(1, Math.min(H, Math.round(h * s)));
  return { left: Math.floor((W - width) / 2), top: Math.floor((H - height) / 2), width, height };
}

/**
 * Read an image as CHW float32 in `spec.valueRange`: EXIF-rotated, alpha composited on
 * white, brought to the model resolution by `fit` (default: cover and centre-crop). Animated images
 * use their first frame.
 */
export async function readImage(path: string, spec: ImageSpec, fit: Fit = 'crop'): Promise<Float32Array> {
  return (await readImageAndBytes(path, spec, fit)).data;
}

/** `readImage`, also returning the file's bytes as read (one read serves the pixels and a digest) and where it lies. */
export async function readImageAndBytes(
  path: string,
  spec: ImageSpec,
  fit: Fit = 'crop',
): Promise<{ data: Float32Array; bytes: Buffer; geometry: FitGeometry }> {
  let input: Buffer;
  try {
    input = await readFile(path);
  } catch (e) {
    throw new ImageReadError(path, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message);
  }
  if (input.length === 0) throw new ImageReadError(path, 'the file is empty (0 bytes)');
  let raw: Buffer;
  let geometry: FitGeometry;
  try {
    const source = sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'truncated', animated: false });
    const meta = await source.metadata();
    // EXIF orientations 5–8 swap the sides
    const [w, h] = (meta.orientation ?? 1) >= 5 ? [meta.height ?? 1, meta.width ?? 1] : [meta.width ?? 1, meta.height ?? 1];
    const whole = { left: 0, top: 0, width: spec.width, height: spec.height };
    geometry = { fit, sourceWidth: w, sourceHeight: h, box: fit === 'pad' ? padBox(w, h, spec.width, spec.height) : whole };
    let img = source.rotate().flatten({ background: '#ffffff' });
    if (fit === 'crop') img = img.resize(spec.width, spec.height, { fit: 'cover', position: 'centre' });
    else if (fit === 'stretch') img = img.resize(spec.width, spec.height, { fit: 'fill' });
    else {
      const b = geometry.box;
      img = img.resize(b.width, b.height, { fit: 'fill' }).extend({
        left: b.left,
        top: b.top,
        right: spec.width - b.width - b.left,
        bottom: spec.height - b.height - b.top,
        background: '#ffffff',
      });
    }
    img = spec.channels === 1 ? img.grayscale() : img.toColourspace('srgb');
    raw = await img.removeAlpha().raw({ depth: 'uchar' }).toBuffer();
  } catch (e) {
    throw new ImageReadError(path, explainSharpError(e));
  }
  const plane = spec.width * spec.height;
  const stride = raw.length / plane; // sharp may keep 3 bands for grayscale sources
  const out = new Float32Array(spec.channels * plane);
  const [lo, hi] = spec.valueRange;
  for (let c = 0; c < spec.channels; c++) {
    for (let i = 0; i < plane; i++) out[c * plane + i] = lo + (raw[i * stride + c]! / 255) * (hi - lo);
  }
  return { data: out, bytes: input, geometry };
}

/**
 * A model output brought back to its source's aspect (pad: the image's box cut out of the frame; stretch:
 * resized), at the model's scale — the longest side as the frame's; crop outputs stay as they are.
 * Returns interleaved 8-bit pixels and their size, for encodePixelsPng.
 */
export async function restoreAspect(
  chw: Float32Array,
  spec: ImageSpec,
  g: FitGeometry,
  toSourceSize = false,
): Promise<{ pixels: Uint8Array; width: number; height: number }> {
  const pixels = toPixels(chw, spec);
  if (g.fit === 'crop' && !toSourceSize) return { pixels, width: spec.width, height: spec.height };
  let width: number;
  let height: number;
  if (toSourceSize) {
    // the source's own pixels: the whole image (pad, stretch) or the part the crop kept
    const k = g.fit === 'crop' ? Math.max(spec.width / g.sourceWidth, spec.height / g.sourceHeight) : 1;
    [width, height] = g.fit === 'crop' ? [Math.round(spec.width / k), Math.round(spec.height / k)] : [g.sourceWidth, g.sourceHeight];
  } else {
    const s = Math.max(spec.width, spec.height) / Math.max(g.sourceWidth, g.sourceHeight);
    [width, height] = [Math.max(1, Math.round(g.sourceWidth * s)), Math.max(1, Math.round(g.sourceHeight * s))];
  }
  let img = sharp(pixels, { raw: { width: spec.width, height: spec.height, channels: spec.channels } });
  if (g.fit === 'pad') img = img.extract(g.box);
  // Lanczos (sharp's default kernel) for any change of scale: the upscale method the parameters name
  const out = await img.resize(Math.max(1, width), Math.max(1, height), { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
  return { pixels: new Uint8Array(out), width: Math.max(1, width), height: Math.max(1, height) };
}

/** A PNG of interleaved 8-bit pixels of any size, with text chunks. */
export async function encodePixelsPng(
  pixels: Uint8Array,
  size: { width: number; height: number; channels: 1 | 3 },
  text: Record<string, string> = {},
): Promise<Uint8Array> {
  const png = await sharp(pixels, { raw: size }).png({ compressionLevel: 6 }).toBuffer();
  return withPngText(png, text);
}

/** CHW float32 in `valueRange` → interleaved 8-bit pixels, clamped and rounded. */
export function toPixels(chw: Float32Array, spec: ImageSpec): Uint8Array {
  const plane = spec.width * spec.height;
  const px = new Uint8Array(plane * spec.channels);
  const [lo, hi] = spec.valueRange;
  for (let c = 0; c < spec.channels; c++) {
    for (let i = 0; i < plane; i++) {
      const v = ((chw[c * plane + i]! - lo) / (hi - lo)) * 255;
      px[i * spec.channels + c] = Math.max(0, Math.min(255, Math.round(Number.isFinite(v) ? v : 0)));
    }
  }
  return px;
}

// PNG iTXt: keyword\0 flag(0) method(0) language\0 translated\0 UTF-8 text
function iTxtChunk(keyword: string, text: string): PngChunk {
  const enc = new TextEncoder();
  const k = enc.encode(keyword);
  const t = enc.encode(text);
  const data = new Uint8Array(k.length + 5 + t.length);
  data.set(k, 0);
  data.set(t, k.length + 5); // the five bytes between are 0: \0, flag, method, empty language\0, empty translation\0
  return { name: 'iTXt', data };
}

function decodeITxt(data: Uint8Array): { keyword: string; text: string } | null {
  const dec = new TextDecoder();
  const z = data.indexOf(0);
  if (z < 0 || data[z + 1] !== 0) return null; // compressed iTXt is not ours
  const lang = data.indexOf(0, z + 3);
  const trans = data.indexOf(0, lang + 1);
  if (lang < 0 || trans < 0) return null;
  return { keyword: dec.decode(data.subarray(0, z)), text: dec.decode(data.subarray(trans + 1)) };
}

const isLatin1 = (s: string) => [...s].every((ch) => ch.charCodeAt(0) > 0 && ch.charCodeAt(0) < 256);

/** Insert text chunks before IEND; tEXt where Latin-1 allows, else UTF-8 iTXt. */
export function withPngText(png: Uint8Array, text: Record<string, string>): Uint8Array {
  const chunks = extractChunks(png);
  const end = chunks.findIndex((c) => c.name === 'IEND');
  const extra = Object.entries(text).map(([k, v]) => (isLatin1(v) ? pngText.encode(k, v) : iTxtChunk(k, v)));
  chunks.splice(end, 0, ...extra);
  return encodeChunks(chunks);
}

/** Text chunks of a PNG (tEXt and uncompressed iTXt). */
export function readPngTextFromBuffer(png: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of extractChunks(png)) {
    const entry = c.name === 'tEXt' ? pngText.decode(c.data) : c.name === 'iTXt' ? decodeITxt(c.data) : null;
    if (entry) out[entry.keyword] = entry.text;
  }
  return out;
}

export async function readPngText(path: string): Promise<Record<string, string>> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new ImageReadError(path, (e as Error).message);
  }
  try {
    return readPngTextFromBuffer(buf);
  } catch (e) {
    throw new ImageReadError(path, `not a readable PNG (${(e as Error).message})`);
  }
}

/** The first `max` items of an NCHW batch side by side, as one CHW image (a live preview of a whole batch). */
export function sideBySide(batch: Float32Array, shape: readonly number[], max = 4): { chw: Float32Array; width: number } {
  const [n, c, h, w] = shape as [number, number, number, number];
  const k = Math.max(1, Math.min(n, max));
  const out = new Float32Array(c * h * w * k);
  for (let i = 0; i < k; i++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++) {
        const from = ((i * c + ch) * h + y) * w;
        out.set(batch.subarray(from, from + w), (ch * h + y) * w * k + i * w);
      }
  return { chw: out, width: w * k };
}

export async function encodePng(chw: Float32Array, spec: ImageSpec, text: Record<string, string> = {}): Promise<Uint8Array> {
  return encodePixelsPng(toPixels(chw, spec), { width: spec.width, height: spec.height, channels: spec.channels }, text);
}

/**
 * The pixels of an image file as a PNG that carries nothing else: no text chunks (a gallery PNG's
 * `parameters`), no EXIF/XMP/ICC, no timestamps — what a blind viewer may be shown.
 */
export async function pixelsOnlyPng(path: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(path, { failOn: 'error' }).png().toBuffer());
}

/** Write a file atomically: a temp file beside it, then rename (no half-written results). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOSPC'
        ? 'the disk is full'
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
          ? 'the folder is not writable'
          : (e as Error).message;
    throw new Error(`cannot write "${path}": ${why}`, { cause: e });
  }
}

/**
 * A grid of images (rows of [C, H, W] items in the spec's value range; null leaves a cell blank),
 * each shown 2× with nearest-neighbour scaling, under a header line of column titles. PNG.
 */
export async function imageGrid(rows: (Float32Array | null)[][], spec: ImageSpec, headers: string[]): Promise<Buffer> {
  const cols = Math.max(headers.length, ...rows.map((r) => r.length));
  const cell = 2 * spec.width;
  const cellH = 2 * spec.height;
  const gap = 4;
  const header = headers.length ? 28 : gap;
  const width = cols * cell + (cols + 1) * gap;
  const height = header + rows.length * (cellH + gap) + gap;
  const cell2x = async (chw: Float32Array) =>
    sharp(Buffer.from(toPixels(chw, spec)), { raw: { width: spec.width, height: spec.height, channels: spec.channels } })
      .resize(cell, cellH, { kernel: 'nearest' })
      .png()
      .toBuffer();
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const layers: OverlayOptions[] = [];
  if (headers.length) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${header}">${headers
      .map(
        (h, i) =>
          `<text x="${gap + i * (cell + gap) + cell / 2}" y="19" font-family="sans-serif" font-size="12" text-anchor="middle">${esc(h)}</text>`,
      )
      .join('')}</svg>`;
    layers.push({ input: Buffer.from(svg), left: 0, top: 0 });
  }
  for (const [r, row] of rows.entries()) {
    const top = header + r * (cellH + gap);
    for (const [c, img] of row.entries()) if (img) layers.push({ input: await cell2x(img), left: gap + c * (cell + gap), top });
  }
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(layers)
    .png()
    .toBuffer();
}
