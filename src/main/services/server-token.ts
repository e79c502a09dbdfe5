/**
 * The server mode's access token, kept in the data folder (readable by the user only), so a
 * restart keeps open pages and bookmarks working; --new-token replaces it.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../engine/io/image-io.js';

export const TOKEN_FILE = 'server-token';

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
