import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  encodePixelsPng,
  padBox,
  readImageAndBytes,
  restoreAspect,
  encodePng,
  readImage,
  readPngText,
  readPngTextFromBuffer,
  sideBySide,
  writeFileAtomic,
} from '../../src/main/engine/io/image-io.js';
import { tempDir } from '../helpers/tmp.js';

const spec = { channels: 3 as const, height: 8, width: 8, valueRange: [-1, 1] as const };

describe('image I/O', async () => {
  const dir = await tempDir();
  const solid = (name: string, create: { width: number; height: number; channels: 3 | 4; background: object }) =>
    sharp({ create }).png().toFile(join(dir, name));

  it('reads an image as CHW in the model range, resized to the model resolution', async () => {
    await solid('red.png', { width: 20, height: 10, channels: 3, background: { r: 255, g: 0, b: 0 } });
    const x = await readImage(join(dir, 'red.png'), spec);
    expect(x).toHaveLength(3 * 64);
    expect(x[0]).toBeCloseTo(1, 5);
    expect(x[64]).toBeCloseTo(-1, 5);
  });

  it('composites transparency on white', async () => {
    await solid('clear.png', { width: 8, height: 8, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } });
    const x = await readImage(join(dir, 'clear.png'), spec);
    expect(Math.min(...x)).toBeCloseTo(1, 5);
  });

  it('reads grayscale and [0, 1] models', async () => {
    await solid('gray.png', { width: 8, height: 8, channels: 3, background: { r: 51, g: 51, b: 51 } });
    const x = await readImage(join(dir, 'gray.png'), { ...spec, channels: 1, valueRange: [0, 1] });
    expect(x).toHaveLength(64);
    expect(x[5]).toBeCloseTo(0.2, 2);
  });

  it('names the file and the problem for a truncated PNG, an empty file and a text file', async () => {
    await solid('ok.png', { width: 64, height: 64, channels: 3, background: { r: 9, g: 200, b: 7 } });
    const full = await readFile(join(dir, 'ok.png'));
    await writeFile(join(dir, 'cut.png'), full.subarray(0, Math.floor(full.length / 2)));
    await writeFile(join(dir, 'empty.png'), '');
    await writeFile(join(dir, 'notes.png'), 'this is not an image');
    await expect(readImage(join(dir, 'cut.png'), spec)).rejects.toThrow(/cannot read "cut.png": /);
    await expect(readImage(join(dir, 'empty.png'), spec)).rejects.toThrow(/cannot read "empty.png": the file is empty/);
    await expect(readImage(join(dir, 'notes.png'), spec)).rejects.toThrow(/cannot read "notes.png": not an image/);
    await expect(readImage(join(dir, 'missing.png'), spec)).rejects.toThrow(/cannot read "missing.png": file not found/);
  });

  it('round-trips parameters through PNG text chunks, Latin-1 and UTF-8', async () => {
    const x = new Float32Array(3 * 64).fill(0.25);
    const png = await encodePng(x, spec, { parameters: 'Steps: 30, t0: 0.5', 'dg-studio': '{"source":"猫 photo.png"}' });
    const text = readPngTextFromBuffer(png);
    expect(text['parameters']).toBe('Steps: 30, t0: 0.5');
    expect(JSON.parse(text['dg-studio']!).source).toBe('猫 photo.png');
    await writeFileAtomic(join(dir, 'out.png'), png);
    expect((await readPngText(join(dir, 'out.png')))['parameters']).toBe('Steps: 30, t0: 0.5');
    const back = await readImage(join(dir, 'out.png'), spec);
    expect(back[0]).toBeCloseTo(0.25, 1);
  });

  it('says the folder is not writable instead of leaving a half-written file', async () => {
    await expect(writeFileAtomic(join(dir, 'no-such-folder', 'x.png'), 'x')).rejects.toThrow(/cannot write ".*x.png": /);
  });

  it('sideBySide lays a batch out in one row, item i in columns i·w … (i+1)·w − 1 of every channel', () => {
    const [n, c, h, w] = [3, 2, 2, 3];
    const batch = Float32Array.from({ length: n * c * h * w }, (_, i) => i);
    const { chw, width } = sideBySide(batch, [n, c, h, w], 2);
    expect(width).toBe(6);
    // channel 1, row 1: item 0's then item 1's values
    const row = Array.from(chw.subarray((1 * h + 1) * width, (1 * h + 1) * width + width));
    const itemRow = (i: number) => Array.from(batch.subarray(((i * c + 1) * h + 1) * w, ((i * c + 1) * h + 1) * w + w));
    expect(row).toEqual([...itemRow(0), ...itemRow(1)]);
  });
});

describe('fitting a source of another size or aspect (issue 28, finding 2)', async () => {
  const dir = await tempDir();
  const spec = { channels: 3 as const, height: 64, width: 64, valueRange: [-1, 1] as const };
  // 300×120: a red left half and a blue right half
  const wide = join(dir, 'wide.png');
  const px = Buffer.alloc(300 * 120 * 3);
  for (let y = 0; y < 120; y++) for (let x = 0; x < 300; x++) px.set(x < 150 ? [255, 0, 0] : [0, 0, 255], (y * 300 + x) * 3);
  await sharp(px, { raw: { width: 300, height: 120, channels: 3 } })
    .png()
    .toFile(wide);
  const at = (d: Float32Array, c: number, y: number, x: number) => d[c * 64 * 64 + y * 64 + x]!;

  it('pad puts the whole image in a centred box with white around; crop keeps the centre; stretch keeps both halves', async () => {
    expect(padBox(300, 120, 64, 64)).toEqual({ left: 0, top: 19, width: 64, height: 26 });
    const pad = await readImageAndBytes(wide, spec, 'pad');
    expect(pad.geometry).toEqual({ fit: 'pad', sourceWidth: 300, sourceHeight: 120, box: { left: 0, top: 19, width: 64, height: 26 } });
    expect([at(pad.data, 0, 5, 5), at(pad.data, 1, 5, 5), at(pad.data, 2, 5, 5)]).toEqual([1, 1, 1]); // white above the box
    expect(at(pad.data, 0, 32, 5)).toBeCloseTo(1, 1); // red inside it, on the left
    expect(at(pad.data, 2, 32, 60)).toBeCloseTo(1, 1); // blue on the right
    const crop = await readImageAndBytes(wide, spec, 'crop');
    expect(at(crop.data, 0, 5, 5)).toBeCloseTo(1, 1); // no white: the centre 120×120 fills the frame, red on its left
    const stretch = await readImageAndBytes(wide, spec, 'stretch');
    expect([at(stretch.data, 0, 0, 0), at(stretch.data, 2, 63, 63)].map((v) => Math.round(v))).toEqual([1, 1]);
  });

  it("restoreAspect cuts a pad output back to the box and brings pad and stretch outputs to the source's aspect", async () => {
    const pad = await readImageAndBytes(wide, spec, 'pad');
    const back = await restoreAspect(pad.data, spec, pad.geometry);
    expect([back.width, back.height]).toEqual([64, 26]); // 300:120 with the longest side the frame's
    expect(back.pixels[0]).toBeGreaterThan(240); // the white band is gone: the first pixel is red
    expect(back.pixels[2]).toBeLessThan(15);
    const stretch = await readImageAndBytes(wide, spec, 'stretch');
    expect(await restoreAspect(stretch.data, spec, stretch.geometry)).toMatchObject({ width: 64, height: 26 });
    const crop = await readImageAndBytes(wide, spec, 'crop');
    expect(await restoreAspect(crop.data, spec, crop.geometry)).toMatchObject({ width: 64, height: 64 });
    const png = await encodePixelsPng(back.pixels, { width: 64, height: 26, channels: 3 }, { parameters: 'x' });
    expect(await sharp(png).metadata()).toMatchObject({ width: 64, height: 26 });
  });
});
