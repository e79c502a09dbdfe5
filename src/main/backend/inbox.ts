/**
 * The inbox: images the user dropped or picked, stored by content (the first 32 hex digits of their
 * sha256) with a thumbnail and the name they had. The renderer never sends paths; it names inbox ids.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import sharp, { type Metadata } from 'sharp';
import type { SourceRef } from '../../shared/api.js';
import { explainSharpError, MAX_INPUT_PIXELS, writeFileAtomic } from '../engine/io/image-io.js';
import { resourcesDir } from '../services/resources.js';

export const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

export class Inbox {
  readonly dir: string;
  constructor(home: string) {
    this.dir = join(home, 'inbox');
  }

  /** Store images (content-addressed) with thumbnails; a file that is not a usable image is named in `errors`. */
  async add(files: { name: string; data: Uint8Array }[]) {
    const sources: SourceRef[] = [];
    const errors: { name: string; message: string }[] = [];
    for (const f of files) {
      try {
        sources.push(await this.addOne(f));
      } catch (e) {
        errors.push({ name: f.name, message: `cannot use "${f.name}": ${(e as Error).message}` });
      }
    }
    return { sources, errors };
  }

  private async addOne(f: { name: string; data: Uint8Array }): Promise<SourceRef> {
    if (f.data.length === 0) throw new Error('the file is empty');
    if (f.data.length > MAX_UPLOAD_BYTES) throw new Error(`the file is larger than ${MAX_UPLOAD_BYTES >> 20} MiB`);
    let meta: Metadata;
    try {
      meta = await sharp(f.data, { limitInputPixels: MAX_INPUT_PIXELS }).metadata();
    } catch (e) {
      // too large, truncated, empty: say which; anything else is not an image we read
      const why = explainSharpError(e);
      if (/larger than|truncated|empty/.test(why)) throw new Error(why, { cause: e });
      throw new Error('not an image DG Studio can read (PNG, JPEG, WebP, GIF, TIFF, AVIF)', { cause: e });
    }
    if ((meta.width ?? 0) * (meta.height ?? 0) > MAX_INPUT_PIXELS) throw new Error(`the image is larger than ${MAX_INPUT_PIXELS} pixels`);
    const sha = createHash('sha256').update(f.data).digest('hex').slice(0, 32);
    const ext = (extname(f.name).toLowerCase() || '.png').replace(/[^.a-z0-9]/g, '');
    const path = join(this.dir, `${sha}${ext}`);
    if (!existsSync(path)) {
      const thumb = await sharp(f.data, { limitInputPixels: MAX_INPUT_PIXELS })
        .rotate()
        .resize(128, 128, { fit: 'inside' })
        .webp()
        .toBuffer();
      await writeFileAtomic(join(this.dir, 'thumbs', `${sha}.webp`), thumb);
      await writeFileAtomic(path, f.data);
      await writeFileAtomic(join(this.dir, `${sha}.name`), f.name);
    }
    // EXIF orientations 5–8 swap the sides
    const [width, height] = (meta.orientation ?? 1) >= 5 ? [meta.height, meta.width] : [meta.width, meta.height];
    return { id: sha, name: f.name, thumb: `source/${sha}`, ...(width && height ? { width, height } : {}) };
  }

  /** The bundled samples (resources/samples/*.png), through the same inbox as any picked file. */
  async addSamples() {
    const dir = join(resourcesDir(), 'samples');
    const names = (await readdir(dir)).filter((n) => n.toLowerCase().endsWith('.png')).sort();
    return this.add(await Promise.all(names.map(async (name) => ({ name, data: new Uint8Array(await readFile(join(dir, name))) }))));
  }

  /** The files of inbox ids, in order; an id no longer there is an error that says what to do. */
  async paths(ids: string[]): Promise<string[]> {
    const names = await readdir(this.dir);
    return ids.map((id) => {
      const f = names.find((n) => n.startsWith(id) && !n.endsWith('.name'));
      if (!f) throw new Error(`source ${id} is no longer in the inbox; add the image again`);
      return join(this.dir, f);
    });
  }

  /** The name the user gave an inbox image, and its thumbnail (any other path: its own name, no thumbnail). */
  sourceOf(path: string): { name: string; thumb: string | null } {
    const m = /^([0-9a-f]{32})\.[a-z0-9]*$/.exec(basename(path));
    if (!path.startsWith(this.dir) || !m) return { name: basename(path), thumb: null };
    let name = basename(path);
    try {
      name = readFileSync(join(this.dir, `${m[1]}.name`), 'utf8');
    } catch {
      // the name file is a nicety; the hash name still identifies the image
    }
    return { name, thumb: `source/${m[1]}` };
  }

  /** The thumbnail file of an inbox id (resolveFile's `source` kind). */
  thumbPath(id: string): string {
    return join(this.dir, 'thumbs', `${id}.webp`);
  }
}
