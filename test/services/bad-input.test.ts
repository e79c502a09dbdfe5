import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Gallery } from '../../src/main/services/gallery.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { translateFiles } from '../../src/main/services/translate-files.js';
import { tempDir } from '../helpers/tmp.js';

/** A PNG whose header claims `w`×`h` pixels but whose data is tiny (a decompression-bomb header). */
function bombPng(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(100))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('bad input: each file gets a clear recorded error, the rest go on, nothing stored is lost', async () => {
  const dir = await tempDir();
  const inDir = join(dir, 'in put ✓ 猫');
  await mkdir(inDir);
  const base = sharp({ create: { width: 64, height: 64, channels: 3, background: '#3a7bd5' } });
  const okPng = await base.clone().png().toBuffer();
  const okJpg = await base.clone().jpeg().toBuffer();
  const files: Record<string, Buffer | string> = {
    'good photo 1.png': okPng,
    'truncated.png': okPng.subarray(0, okPng.length >> 1),
    'truncated.jpg': okJpg.subarray(0, okJpg.length >> 1),
    'sixteen-bit.png': await sharp({ create: { width: 40, height: 40, channels: 3, background: '#808080' } })
      .toColourspace('rgb16')
      .png()
      .toBuffer(),
    'cmyk.jpg': await base.clone().toColourspace('cmyk').jpeg().toBuffer(),
    'grey.png': await base.clone().grayscale().png().toBuffer(),
    'alpha.png': await sharp({ create: { width: 64, height: 64, channels: 4, background: { r: 200, g: 0, b: 0, alpha: 0.3 } } })
      .png()
      .toBuffer(),
    'animated.gif': await sharp({ create: { width: 64, height: 128, channels: 4, background: '#00ff00' } })
      .gif()
      .toBuffer(),
    'bomb.png': bombPng(20000, 20000),
    'empty.png': Buffer.alloc(0),
    'notes.png': 'these are my notes, not an image',
    'ünïcødé ✓.png': okPng,
  };
  for (const [name, data] of Object.entries(files)) await writeFile(join(inDir, name), data);

  it('translates the readable ones, records a named error for each broken one', async () => {
    const gallery = await Gallery.open(join(dir, 'gallery'));
    const { outputs, errors } = await translateFiles({
      inputs: [inDir],
      outDir: join(dir, 'out'),
      params: { steps: 2, batchSize: 3 },
      modelManifest: bundledDefaults().scoreModel,
      gallery,
    });
    const failed = Object.fromEntries(errors.map((e) => [e.file.split('/').pop()!, e.message]));
    expect(Object.keys(failed).sort()).toEqual(['bomb.png', 'empty.png', 'notes.png', 'truncated.jpg', 'truncated.png']);
    expect(failed['bomb.png']).toMatch(/cannot read "bomb.png": the image is larger than \d+ pixels/);
    expect(failed['empty.png']).toMatch(/cannot read "empty.png": the file is empty/);
    expect(failed['notes.png']).toMatch(/cannot read "notes.png": not an image/);
    expect(failed['truncated.png']).toMatch(/cannot read "truncated.png": /);
    expect(outputs.map((o) => o.source.split('/').pop()).sort()).toEqual([
      'alpha.png',
      'animated.gif',
      'cmyk.jpg',
      'good photo 1.png',
      'grey.png',
      'sixteen-bit.png',
      'ünïcødé ✓.png',
    ]);
    // errors are in the gallery too, beside the results
    expect(gallery.search({ includeErrors: true, limit: 100 }).filter((r) => r.error)).toHaveLength(5);
    gallery.db.close();
  });

  it('an unwritable output folder is a clear error and the gallery keeps what it had', async () => {
    const gallery = await Gallery.open(join(dir, 'gallery'));
    const before = gallery.search({ limit: 100 }).length;
    await writeFile(join(dir, 'a-file'), 'x');
    await expect(
      translateFiles({
        inputs: [join(inDir, 'good photo 1.png')],
        outDir: join(dir, 'a-file', 'out'),
        params: { steps: 1 },
        modelManifest: bundledDefaults().scoreModel,
        gallery,
      }),
    ).rejects.toThrow(/a-file/);
    expect(gallery.search({ limit: 100 })).toHaveLength(before);
    gallery.db.close();
  });
});
