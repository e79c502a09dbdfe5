/**
 * The README's studio screenshots, on the bundled default models (the end-to-end tests use the toy
 * fixture): server mode in Chromium, the bundled samples translated with DG and compared with plain
 * SDEdit, then the result viewer. Needs `npm run build` and Chromium.
 *
 *   npx tsx tools/readme-screenshots.ts            # writes docs/screenshots/translate.png and viewer.png
 *
 * and every tab, in both themes, at 1024×700 and 1600×1000, into docs/screenshots/tabs/ (docs/studio-tour.md),
 * with a study made from the two settings and an annotator link on the Annotate tab.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
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
  // the form starts at the bundled models’ recommendations (t0 0.3, w = 16)
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
  await page.keyboard.press('Escape');
  // a study of the two settings, and an annotator link, so the Annotate tab shows what an owner sees
  await page.click('[data-testid=tab-annotate]');
  await page.click('[data-testid=study-create]');
  await page.fill('[data-testid=link-annotator]', 'ada');
  await page.click('[data-testid=link-create]');
  await page.locator('[data-testid=link-url]').waitFor();
  const tabs = join(out, 'tabs');
  await mkdir(tabs, { recursive: true });
  const theme = () => page.locator('.app').getAttribute('data-theme');
  for (const themeName of ['light', 'dark'])
    for (const [w, h] of [
      [1024, 700],
      [1600, 1000],
    ] as const) {
      if ((await theme()) !== themeName) await page.click('[data-testid=theme]');
      await page.setViewportSize({ width: w, height: h });
      for (const tab of ['translate', 'gallery', 'sweep', 'train', 'annotate', 'settings']) {
        await page.click(`[data-testid=tab-${tab}]`);
        await page.waitForTimeout(400);
        await page.screenshot({ path: join(tabs, `${themeName}-${w}-${tab}.png`) });
      }
    }
  console.log(`wrote ${join(out, 'translate.png')}, ${join(out, 'viewer.png')} and 24 tab screenshots in ${tabs}`);
} finally {
  await browser.close();
  await server.close();
  await backend.close();
  await rm(data, { recursive: true, force: true });
}
