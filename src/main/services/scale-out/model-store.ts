/**
 * Models by identity for scale-out: a model is its folder, named by `folderDigest` (the SHA-256 of its files'
 * names and digests), so a submitter and a worker agree on "the same model" whatever path each keeps it at.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { manifestPathOf } from '../../engine/models/score-model.js';

/** The SHA-256 of each plain file of a model's folder (dot files left out), by name, in name order. */
export async function fileDigests(folder: string): Promise<Map<string, string>> {
  const names = (await readdir(folder, { withFileTypes: true }))
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  const out = new Map<string, string>();
  for (const n of names)
    out.set(
      n,
      createHash('sha256')
        .update(await readFile(join(folder, n)))
        .digest('hex'),
    );
  return out;
}

/** A model folder's identity from its files' digests: SHA-256 over the sorted (name, SHA-256). */
export function digestOfFiles(files: Map<string, string>): string {
  const h = createHash('sha256');
  for (const [n, sha] of files) h.update(`${n}\0${sha}\n`);
  return h.digest('hex');
}

/** SHA-256 over the sorted (name, SHA-256) of the plain files of a model's folder (dot files left out). */
export async function folderDigest(folder: string): Promise<string> {
  return digestOfFiles(await fileDigests(folder));
}

/** The folder of a manifest path or a model folder. */
export const modelFolderOf = (manifestOrFolder: string) => dirname(manifestPathOf(manifestOrFolder));

/**
 * The models a worker can run: model folders (holding manifest.json) given directly or one level down in
 * the folders it was given. Digests are computed once per folder and kept.
 */
export class ModelStore {
  private digests: Map<string, string> | null = null;
  private scannedAt = 0;

  constructor(private readonly roots: string[]) {}

  private async scan(): Promise<Map<string, string>> {
    const byDigest = new Map<string, string>();
    for (const root of this.roots) {
      const candidates = existsSync(join(root, 'manifest.json'))
        ? [root]
        : (await readdir(root, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => join(root, e.name));
      for (const folder of candidates) {
        if (!existsSync(join(folder, 'manifest.json')) || !(await stat(folder)).isDirectory()) continue;
        byDigest.set(await folderDigest(folder), join(folder, 'manifest.json'));
      }
    }
    return byDigest;
  }

  /** The manifest of the model with this digest, or null (the folders are looked at again, at most every 10 s,
   * in case it was copied in since). */
  async find(digest: string): Promise<string | null> {
    if (!this.digests || (!this.digests.has(digest) && Date.now() - this.scannedAt > 10_000)) {
      this.digests = await this.scan();
      this.scannedAt = Date.now();
    }
    return this.digests.get(digest) ?? null;
  }
}
