/**
 * The README's studio screenshots, on the bundled default models (the end-to-end tests use the toy
 * fixture): server mode in Chromium, the bundled samples translated with DG and compared with plain
 * SDEdit, then the result viewer. Needs `npm run build` and Chromium.
 *
 *   npx tsx tools/readme-screenshots.ts            # writes docs/screenshots/translate.png and viewer.png
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StudioBackend } from '../src/main/backend/backend.js';
import { startServer } from '../src/main/server/server.js';
import { launchChromium } from './chromium.js';

const root = join(import.meta.dirname, '..');
const rendererDir = join(root, 'out', 'renderer');
const out = join(root, 'docs', 'screenshots');
if (!existsSync(join(rendererDir, 'index.html'))) throw new Error('build the renderer first: npm run build');
process.env['DG_STUDIO_RESOURCES'] = join(root, 'resources');

const data = await mkdtemp(join(tmpdir(), 'dg-screenshots-'));
const backend = await StudioBackend.create({ mode: 'server', dataDir: data });
const server = await startServer({ backend, rendererDir });
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(server.url);
  await page.click('[data-testid=try-samples]');
  await page.locator('[data-testid=source]').nth(7).waitFor();
  // the drawings first in the list are not emoji: keep the eight Twemoji
  for (const name of ['badge.png', 'smiley.png'])
    await page.locator('[data-testid=source]', { hasText: name }).locator('[aria-label=remove]').click();
  // the form starts at the bundled models' recommendations (t0 0.35, w = 32)
  await page.click('[data-testid=run]');
  await page.locator('[data-testid=result]').nth(7).waitFor({ timeout: 120_000 });
  await page.click('[data-testid=compare]');
  await page.locator('[data-testid=wipe]').first().waitFor({ timeout: 120_000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(out, 'translate.png') });
  await page.click('[data-testid=view]');
  await page.locator('[data-testid=viewer]').waitFor();
  for (let i = 0; i < 7; i++) await page.keyboard.press('ArrowRight'); // the penguin
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(out, 'viewer.png') });
  console.log(`wrote ${join(out, 'translate.png')} and ${join(out, 'viewer.png')}`);
} finally {
  await browser.close();
  await server.close();
  await backend.close();
  await rm(data, { recursive: true, force: true });
}
