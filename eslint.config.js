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
    ['**/services/**', '**/backend/**', '**/server/**', '**/cli/**', '**/app/**', 'electron', '**/renderer/**'],
    'the engine imports no service, back end, transport, app glue or Electron',
  ),
  boundary(
    ['src/main/services/**'],
    ['**/backend/**', '**/server/**', '**/cli/**', '**/app/**', 'electron', '**/renderer/**'],
    'services know nothing of the back end host, transports, windows or the CLI',
  ),
  boundary(
    ['src/main/backend/**'],
    ['**/server/**', '**/cli/**', '**/app/**', 'electron', '**/renderer/**'],
    'the back end serves any transport and knows none of them',
  ),
  boundary(
    ['src/main/server/**'],
    ['**/engine/**', '**/services/**', '**/backend/**', '**/cli/**', '**/app/**', 'electron', '**/renderer/**'],
    'server mode is a transport: it forwards to a ServedBackend and speaks only the shared contract',
  ),
  boundary(
    ['src/main/app/**'],
    ['**/engine/**', '**/services/**', '**/server/**', '**/cli/**', '**/renderer/**'],
    'the Electron app is glue: a window, IPC and the back end host',
  ),
  boundary(['src/main/cli/**'], ['**/app/**', 'electron', '**/renderer/**'], 'the CLI runs without Electron'),
  boundary(
    ['src/shared/**'],
    ['**/main/**', '**/renderer/**', '**/preload/**', 'electron', 'node:*'],
    'shared is the contract: no Node, no layers',
  ),
  boundary(['src/renderer/**'], ['**/main/**', '**/preload/**', 'electron', 'node:*'], 'the renderer speaks only the shared contract'),
);
