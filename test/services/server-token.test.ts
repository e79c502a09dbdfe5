import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverToken, TOKEN_FILE, tokenFromFile, tokenWeakness } from '../../src/main/services/server-token.js';
import { tempDir } from '../helpers/tmp.js';

describe('the server token', async () => {
  const dir = await tempDir();

  it('is kept across restarts, readable by the user only, and replaced on request', async () => {
    const a = await serverToken(join(dir, 'data'));
    expect(a).toMatch(/^[0-9a-f]{48}$/);
    expect(await serverToken(join(dir, 'data'))).toBe(a);
    expect((await stat(join(dir, 'data', TOKEN_FILE))).mode & 0o777).toBe(0o600);
    const b = await serverToken(join(dir, 'data'), true);
    expect(b).not.toBe(a);
    expect(await serverToken(join(dir, 'data'))).toBe(b);
  });

  it('a token the user gives must be strong (≥ 32 characters, not a few repeated); a token file is read like one', async () => {
    expect(tokenWeakness('a'.repeat(16))).toMatch(/has 16 characters; give at least 32/);
    expect(tokenWeakness('ab'.repeat(20))).toMatch(/repeats a few characters/);
    expect(tokenWeakness('3f9c0a7be1d24c58a6f0e2b97d13c4a5')).toBeNull();
    await writeFile(join(dir, 'good'), '3f9c0a7be1d24c58a6f0e2b97d13c4a5\n');
    expect(await tokenFromFile(join(dir, 'good'))).toBe('3f9c0a7be1d24c58a6f0e2b97d13c4a5');
    await writeFile(join(dir, 'weak'), 'aaaaaaaaaaaaaaaa\n');
    await expect(tokenFromFile(join(dir, 'weak'))).rejects.toThrow(/weak: the token has 16 characters/);
    await expect(tokenFromFile(join(dir, 'none'))).rejects.toThrow(/cannot read the token file ".*none": ENOENT/);
  });
});
