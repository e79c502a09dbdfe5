#!/usr/bin/env node
// Runs the built CLI (npm run build makes out/main/cli.js).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = fileURLToPath(new URL('../out/main/cli.js', import.meta.url));
if (!existsSync(cli)) {
  console.error('dg-studio is not built yet: run "npm run build" first (or "npm run cli -- …" from a checkout).');
  process.exit(2);
}
const { main } = await import(pathToFileURL(cli).href);
await main(process.argv);
