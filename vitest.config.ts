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
    // and run against the closed-form toy models (a fixture: fast, with known answers); the bundled
    // emoji default has its own tests (test/services/bundled-default.test.ts)
    env: {
      DG_STUDIO_HOME: join(tmpdir(), `dg-studio-test-home-${process.pid}`),
      DG_STUDIO_RESOURCES: join(import.meta.dirname, 'test', 'fixtures', 'toy-resources'),
    },
  },
});
