import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';

/** Layer boundaries (docs/style.md): engine → services → app/server/cli; renderer speaks only shared. */
const boundary = (files, patterns, message) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns: [{ group: patterns, message }] }] },
});

export default tseslint.config(
  { ignores: ['out/**', 'dist/**', 'node_modules/**', '.tmp/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...svelte.configs['flat/recommended'],
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['**/*.svelte'],
    languageOptions: { parserOptions: { parser: tseslint.parser }, globals: { ...globals.browser } },
  },
  { files: ['**/*.svelte.ts'], languageOptions: { parser: tseslint.parser } },
  { files: ['src/renderer/**'], languageOptions: { globals: { ...globals.browser } } },
  boundary(
    ['src/main/engine/**'],
    ['**/services/**', '**/cli/**', 'electron', '**/main/index*', '**/main/ipc*', '**/renderer/**'],
    'the engine imports no service, app glue or Electron',
  ),
  boundary(
    ['src/main/services/**'],
    ['**/cli/**', 'electron', '**/main/index*', '**/main/ipc*', '**/renderer/**'],
    'services know nothing of windows or the CLI',
  ),
  boundary(
    ['src/shared/**'],
    ['**/main/**', '**/renderer/**', '**/preload/**', 'electron', 'node:*'],
    'shared is the contract: no Node, no layers',
  ),
  boundary(['src/renderer/**'], ['**/main/**', '**/preload/**', 'electron', 'node:*'], 'the renderer speaks only the shared contract'),
);
