import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverToken, TOKEN_FILE } from '../../src/main/services/server-token.js';
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
});
