/**
 * What a discriminator training reads once and keeps, for pixel and latent models alike: its image sets, the
 * t0s its unguided translations spread over, and its on-disk cache of float arrays (translations, latents).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { readImage, writeFileAtomic, type ImageSpec } from '../engine/io/image-io.js';

/** The readable images among `files` (a file that cannot be read is skipped, with a warning naming it). */
export async function readImageSet(
  files: string[],
  spec: ImageSpec,
  onWarning?: (message: string) => void,
): Promise<{ file: string; data: Float32Array }[]> {
  const out = [];
  for (const file of files) {
    try {
      out.push({ file, data: await readImage(file, spec) });
    } catch (e) {
      onWarning?.(`skipping ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * The t0 of source `si`'s translation `ti` (k per source): the (si·k + ti)-th point of the golden-ratio sequence
 * over [lo, hi], so that the fakes together cover the t0s a user translates with evenly, whatever k (one per
 * source included), with no t0 tied to a source's place in the sorted list.
 */
export function fakeT0([lo, hi]: [number, number], k: number, si: number, ti: number): number {
  const u = (0.5 + (si * k + ti) * 0.6180339887498949) % 1;
  return lo + (hi - lo) * u;
}

/** The float array cached at `path` when it holds `length` values, else `make()`'s, written there atomically. */
export async function cachedFloats(path: string, length: number, make: () => Promise<Float32Array>): Promise<Float32Array> {
  try {
    const buf = await readFile(path);
    if (buf.length === length * 4) return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  } catch {
    // not cached yet
  }
  const x = await make();
  await writeFileAtomic(path, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  return x;
}

/**
 * A stable split by file name: FNV-1a of the salt and the basename, so it is the same on every
 * machine. Data sets are split with no salt (tools/prepare-emoji.ts); the trainer's validation
 * split uses its own salt, so it is not empty on a folder that is itself one side of such a split.
 */
export function isValidation(file: string, fraction: number, salt = ''): boolean {
  let h = 0x811c9dc5;
  for (const ch of salt + basename(file)) {
    h ^= ch.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32 < fraction;
}

/** The trainer's validation split (see isValidation). */
export const VALIDATION_SALT = 'dg-studio/validation:';
