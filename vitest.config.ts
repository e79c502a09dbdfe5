import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    // the CLI records into the user's gallery by default: tests get their own data folder
    env: { DG_STUDIO_HOME: join(tmpdir(), `dg-studio-test-home-${process.pid}`) },
  },
});
