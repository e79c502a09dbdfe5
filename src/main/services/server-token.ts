/**
 * The server mode's access token, kept in the data folder (readable by the user only), so a
 * restart keeps open pages and bookmarks working; --new-token replaces it.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../engine/io/image-io.js';

export const TOKEN_FILE = 'server-token';

/**
 * Why a token given by the user is too weak (null when it will do): at least 32 characters, and not a
 * repetition of a few characters (16 × "a" was accepted before).
 */
export function tokenWeakness(token: string): string | null {
  if (token.length < 32) return `the token has ${token.length} characters; give at least 32 (or let the studio make one)`;
  if (new Set(token).size < 8) return 'the token repeats a few characters; give a random one (or let the studio make one)';
  return null;
}

/** A token from a file (first line), so it never shows in `ps`; checked like --token. */
export async function tokenFromFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the token file "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const token = text.split('\n')[0]!.trim();
  const weak = tokenWeakness(token);
  if (weak) throw new Error(`${path}: ${weak}`);
  return token;
}

export async function serverToken(dataDir: string, renew = false): Promise<string> {
  const path = join(dataDir, TOKEN_FILE);
  if (!renew) {
    try {
      const t = (await readFile(path, 'utf8')).trim();
      if (/^[0-9a-f]{32,}$/.test(t)) return t;
    } catch {
      // none yet
    }
  }
  const token = randomBytes(24).toString('hex');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, token + '\n');
  await chmod(path, 0o600);
  return token;
}
