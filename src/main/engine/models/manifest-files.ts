/**
 * Files a manifest names must lie in the manifest's own folder (after following links): a
 * manifest is untrusted input (imported, downloaded, uploaded to the server), and may not make the
 * studio read anything else. The refusal is the same whether or not the outside file exists, so
 * it cannot be used to probe the disk.
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** `rel` (a manifest field) resolved inside the folder `base`, or an error naming the field. */
export function fileInManifestFolder(base: string, rel: string, field: string): string {
  const outside = () =>
    new Error(
      `manifest field "${field}" names "${rel}", which is not inside the manifest's folder: a manifest may only name files beside it`,
    );
  if (isAbsolute(rel) || rel.includes('\0')) throw outside();
  const root = realOrSelf(resolve(base));
  const candidate = resolve(root, rel);
  const lexical = relative(root, candidate);
  if (lexical === '' || lexical.startsWith('..') || isAbsolute(lexical)) throw outside();
  const real = realOrSelf(candidate);
  const r = relative(root, real);
  if (r === '' || r.startsWith('..') || isAbsolute(r)) throw outside();
  return real;
}
