import { resolve } from 'node:path';
import { defineConfig } from 'electron-vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// Native modules stay external: they are loaded from node_modules at run time.
const external = ['onnxruntime-node', 'sharp', 'better-sqlite3'];

export default defineConfig({
  main: {
    build: {
      rollupOptions: {
        external,
        input: {
          index: resolve(import.meta.dirname, 'src/main/app/index.ts'),
          cli: resolve(import.meta.dirname, 'src/main/cli/index.ts'),
          'backend-host': resolve(import.meta.dirname, 'src/main/backend/host.ts'),
          // trainings run on a worker thread of the engine process (services/training-thread.ts)
          'training-worker': resolve(import.meta.dirname, 'src/main/services/training.worker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      // sandboxed preloads must be CommonJS
      rollupOptions: {
        input: { index: resolve(import.meta.dirname, 'src/preload/index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(import.meta.dirname, 'src/renderer'),
    plugins: [svelte()],
    build: {
      rollupOptions: { input: { index: resolve(import.meta.dirname, 'src/renderer/index.html') } },
    },
  },
});
