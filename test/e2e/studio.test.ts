/**
 * End-to-end: the real renderer (built by `npm run build`) in Debian's Chromium, driven by
 * Playwright, against server mode on the bundled (toy) models. Screenshots go to
 * test-artifacts/. The back end runs in its own process, as `dg-studio serve` runs it: ONNX Runtime's
 * Node binding runs a session synchronously, so a training in this process would stall Playwright too.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackendProcess, type BackendProcess } from '../../src/main/backend/process.js';
import { readPngTextFromBuffer } from '../../src/main/engine/io/image-io.js';
import { startServer, type StudioServer } from '../../src/main/server/server.js';
import { apiOverTransport } from '../../src/shared/api.js';
import { parse as parseCsv } from 'csv-parse/sync';
import { unzipSync } from 'fflate';
import { tempDir } from '../helpers/tmp.js';
import { launchChromium } from '../../tools/chromium.js';

const root = join(import.meta.dirname, '..', '..');
const rendererDir = join(root, 'out', 'renderer');
const artifacts = join(root, 'test-artifacts');

describe('studio in a real browser (server mode)', async () => {
  const dir = await tempDir();
  let server: StudioServer;
  let engine: BackendProcess;
  /** the API as the page calls it, through the engine process */
  const backend = apiOverTransport((m, args) => engine.dispatch(m, args));
  let browser: Browser;
  let page: Page;
  const images: string[] = [];

  beforeAll(async () => {
    if (!existsSync(join(rendererDir, 'index.html'))) throw new Error('the renderer is not built: run "npm run build" (npm test does)');
    await mkdir(artifacts, { recursive: true });
    for (let i = 0; i < 3; i++) {
      const p = join(dir, `photo ${i}.png`);
      await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 40 + 60 * i, g: 90, b: 200 - 50 * i } } })
        .png()
        .toFile(p);
      images.push(p);
    }
    await writeFile(join(dir, 'notes.png'), 'not an image at all');
    engine = await startBackendProcess({ mode: 'server', dataDir: join(dir, 'data') });
    server = await startServer({ backend: engine, rendererDir });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // file-chooser interception on from the start: turning it on is asynchronous, and a chooser opened before
    // it took effect never reaches waitForEvent (a 30 s timeout on a busy machine)
    page.on('filechooser', () => {});
    await page.goto(server.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await engine?.close();
  });

  it('refuses requests without the access token', async () => {
    const res = await fetch(server.url.replace(/\?token=.*/, 'api/getInfo'), { method: 'POST', body: '[]' });
    expect(res.status).toBe(401);
  });

  it('rejects a bad file with a visible error that says what to do', async () => {
    await page.setInputFiles('[data-testid=file-input]', [join(dir, 'notes.png')]);
    const toast = page.locator('[data-testid=toast]').first();
    await toast.waitFor();
    expect(await toast.textContent()).toMatch(/cannot use "notes.png": not an image .* Use a PNG, JPEG/);
    await page.screenshot({ path: join(artifacts, 'bad-file.png') });
  });

  it('the drop zone is reachable by keyboard, and Enter opens the file picker', async () => {
    await page.locator('[data-testid=drop-zone]').focus();
    expect(
      await page.evaluate(() =>
        (
          globalThis as unknown as { document: { activeElement: { getAttribute(n: string): string | null } } }
        ).document.activeElement.getAttribute('data-testid'),
      ),
    ).toBe('drop-zone');
    const chooser = page.waitForEvent('filechooser');
    await page.keyboard.press('Enter');
    expect((await chooser).isMultiple()).toBe(true);
  });

  it('offers the bundled samples while no source is chosen', async () => {
    await page.click('[data-testid=try-samples]');
    await page.locator('[data-testid=source]').nth(7).waitFor();
    expect(await page.locator('[data-testid=source] figcaption').allTextContents()).toContain('twemoji-1f427-penguin.png');
    expect(await page.locator('[data-testid=try-samples]').count()).toBe(0);
    await page.screenshot({ path: join(artifacts, 'samples.png') });
    // back to an empty list for the next steps
    while ((await page.locator('[data-testid=source] .x').count()) > 0) await page.locator('[data-testid=source] .x').first().click();
    await page.locator('[data-testid=try-samples]').waitFor();
  });

  it('says beforehand what happens to a source of another size (300×120 → 64×64)', async () => {
    const wide = join(dir, 'wide banner.png');
    await sharp({ create: { width: 300, height: 120, channels: 3, background: '#33aa66' } })
      .png()
      .toFile(wide);
    await page.setInputFiles('[data-testid=file-input]', [wide]);
    const note = page.locator('[data-testid=source]', { hasText: 'wide banner.png' }).locator('[data-testid=source-size]');
    await note.waitFor();
    expect(await note.textContent()).toBe('300×120 → 64×64');
    await page.locator('[data-testid=source]', { hasText: 'wide banner.png' }).locator('[aria-label=remove]').click();
    await page.locator('[data-testid=try-samples]').waitFor();
  });

  it('translates images, shows progress and results, and compares with plain SDEdit', async () => {
    await page.setInputFiles('[data-testid=file-input]', images.slice(0, 2));
    await page.locator('[data-testid=source]').nth(1).waitFor();
    // the Translate tab says what the model takes, and how other sizes fit (previewed on the sources)
    expect(await page.locator('[data-testid=model-domain]').textContent()).toMatch(/works on 64×64 px, square images/);
    await page.selectOption('[data-testid=fit]', 'pad');
    expect(
      await page
        .locator('[data-testid=thumbs] img')
        .first()
        .evaluate(
          (el) => (globalThis as unknown as { getComputedStyle(e: unknown): { objectFit: string } }).getComputedStyle(el).objectFit,
        ),
    ).toBe('contain');
    await page.selectOption('[data-testid=fit]', 'crop');
    await page.fill('[data-testid=steps]', '8');
    await page.click('[data-testid=run]');
    await page.locator('[data-testid=progress]').first().waitFor();
    await page.locator('[data-testid=result]').nth(1).waitFor({ timeout: 60_000 });
    expect(await page.locator('[data-testid=progress]').first().textContent()).toMatch(/done/);
    // change the form after the run: Compare must still repeat the run itself (same sources, seeds, t0)
    await page.locator('[data-testid=t0]').fill('0.9');
    await page.fill('[data-testid=seed]', '77');
    await page.locator('[aria-label=remove]').first().click();
    await page.click('[data-testid=compare]');
    await page.locator('[data-testid=wipe]').waitFor({ timeout: 60_000 });
    await expect.poll(() => page.locator('[data-testid=compare-caption]').count(), { timeout: 30_000 }).toBe(2);
    // beside each pair, where DG changed it: |DG − SDEdit| amplified and labelled, with its mean
    await expect.poll(() => page.locator('[data-testid=diff-caption]', { hasText: /mean \d/ }).count(), { timeout: 10_000 }).toBe(2);
    expect(await page.locator('[data-testid=diff-caption]').first().textContent()).toMatch(/\|DG − SDEdit\| ×4: mean \d+\.\d\/255/);
    // the viewer: large, source | SDEdit | DG, arrow keys move, Esc closes
    await page.click('[data-testid=view]');
    await page.locator('[data-testid=viewer]').waitFor();
    expect(await page.locator('[data-testid=viewer-title]').textContent()).toMatch(/^1\/2 · photo 0\.png/);
    await page.keyboard.press('ArrowRight');
    expect(await page.locator('[data-testid=viewer-title]').textContent()).toMatch(/^2\/2 · photo 1\.png/);
    expect(await page.locator('[data-testid=viewer] img').count()).toBe(3);
    await page.screenshot({ path: join(artifacts, 'viewer.png') });
    await page.keyboard.press('Escape');
    await expect.poll(() => page.locator('[data-testid=viewer]').count()).toBe(0);
    const captions = await page.locator('[data-testid=compare-caption]').allTextContents();
    expect(captions.map((c) => c.replace(/, seed \d+$/, ''))).toEqual([
      'photo 0.png: SDEdit (w 0) | DG (w 1) — t0 0.5, 8 steps',
      'photo 1.png: SDEdit (w 0) | DG (w 1) — t0 0.5, 8 steps',
    ]);
    await page.screenshot({ path: join(artifacts, 'translate-compare.png') });
    // outputs are named after the uploaded files, and what they carry names no folder of the server's
    const outs = (await readdir(join(dir, 'data', 'outputs'))).filter((f) => f.endsWith('.png'));
    expect(outs.filter((f) => f.startsWith('photo 0-t0.5-'))).toHaveLength(2); // DG and its compare
    const meta = readPngTextFromBuffer(await readFile(join(dir, 'data', 'outputs', outs[0]!)));
    for (const v of Object.values(meta)) expect(v).not.toContain(dir);
  });

  it('adds a whole folder of images', async () => {
    const folder = join(dir, 'folder');
    await mkdir(folder);
    for (const [i, c] of ['#aa3355', '#33aa55'].entries())
      await sharp({ create: { width: 32, height: 32, channels: 3, background: c } })
        .png()
        .toFile(join(folder, `f${i}.png`));
    const before = await page.locator('[data-testid=source]').count();
    await page.setInputFiles('[data-testid=folder-input]', folder);
    await page
      .locator('[data-testid=source]')
      .nth(before + 1)
      .waitFor();
    expect(await page.locator('[data-testid=source]').count()).toBe(before + 2);
  });

  it('says what is wrong next to a field as it is typed, and Run waits', async () => {
    await page.click('[data-testid=tab-translate]');
    await page.fill('[data-testid=steps]', '5000');
    expect(await page.locator('[data-testid=steps-error]').textContent()).toBe('at most 1000 (you gave 5000)');
    expect(await page.locator('[data-testid=run]').isDisabled()).toBe(true);
    await page.fill('[data-testid=steps]', '');
    expect(await page.locator('[data-testid=steps-error]').textContent()).toMatch(/^(enter a number|missing: give a number)$/);
    await page.fill('[data-testid=seed]', '-5');
    expect(await page.locator('[data-testid=seed-error]').textContent()).toBe('at least 0 (you gave -5)');
    await page.fill('[data-testid=seed]', '0');
    await page.fill('[data-testid=steps]', '8');
    expect(await page.locator('[data-testid=steps-error]').count()).toBe(0);
    // σ min (Advanced): empty is the model's floor; a floor must be positive
    await page.getByRole('button', { name: /Advanced/ }).click();
    expect(await page.locator('[data-testid=sigma-min]').getAttribute('placeholder')).toBe('auto'); // the toy model names no floor
    await page.fill('[data-testid=sigma-min]', '-0.5');
    expect(await page.locator('[data-testid=sigma-min-error]').textContent()).toBe('more than 0 (you gave -0.5)');
    expect(await page.locator('[data-testid=run]').isDisabled()).toBe(true);
    await page.fill('[data-testid=sigma-min]', '');
    await page.locator('[data-testid=sigma-min-error]').waitFor({ state: 'detached' });
    await page.getByRole('button', { name: /Advanced/ }).click();
    expect(await page.locator('[data-testid=run]').isDisabled()).toBe(false);
  });

  it('cancels a run (a batch count of 2 runs every source twice)', async () => {
    await page.fill('[data-testid=steps]', '1000');
    await page.getByRole('button', { name: /Advanced/ }).click();
    await page.fill('[data-testid=batch-count]', '2');
    const sources = await page.locator('[data-testid=source]').count();
    await page.click('[data-testid=run]');
    await page
      .locator('[data-testid=progress]', { hasText: `${2 * sources} image(s)` })
      .first()
      .waitFor();
    // the previous run's results stay on screen, marked, until new ones arrive (they used to vanish at once)
    expect(await page.locator('[data-testid=result]').count()).toBeGreaterThan(0);
    await page.locator('[data-testid=results-stale]').waitFor();
    await page.fill('[data-testid=batch-count]', '1');
    await page.getByRole('button', { name: /Advanced/ }).click();
    // while it runs, Run queues another run behind it (it used to be disabled)
    expect(await page.locator('[data-testid=run]').textContent()).toBe('Queue');
    const before = new Set((await backend.listJobs()).map((j) => j.id));
    await page.click('[data-testid=run]');
    await page.locator('[data-testid=toast]', { hasText: /queued as job #\d+, behind job #\d+/ }).waitFor();
    const queued = (await backend.listJobs()).filter((j) => !before.has(j.id));
    expect(queued.map((j) => [j.kind, j.state])).toEqual([['translate', 'queued']]);
    // Cancel stops the shown (queued) run; the earlier one is cancelled from the jobs panel's API
    for (const j of await backend.listJobs())
      if (j.state === 'running' && !queued.some((q) => q.id === j.id)) await backend.cancelJob(j.id);
    await page.locator('[data-testid=cancel]:not([disabled])').waitFor();
    await page.click('[data-testid=cancel]');
    await page.locator('[data-testid=progress]', { hasText: 'cancelled' }).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(artifacts, 'cancelled.png') });
    await page.fill('[data-testid=steps]', '8');
  });

  it('finds results in the gallery by the original file name, and reuses their parameters', async () => {
    await page.click('[data-testid=tab-gallery]');
    await page.locator('[data-testid=gallery-item]').first().waitFor();
    const found = await backend.gallerySearch({ text: 'photo 1' });
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((f) => f.sourceName === 'photo 1.png')).toBe(true);
    await page.fill('[data-testid=gallery-search]', 'photo 1');
    await expect.poll(() => page.locator('[data-testid=gallery-item]').count(), { timeout: 10_000 }).toBe(found.length);
    await page.fill('[data-testid=gallery-search]', '');
    // filter by DG weight: only the plain SDEdit compare results
    const plainOnes = await backend.gallerySearch({ dgWeight: 0 });
    await page.fill('[data-testid=gallery-weight]', '0');
    await expect.poll(() => page.locator('[data-testid=gallery-item]').count(), { timeout: 10_000 }).toBe(plainOnes.length);
    await page.fill('[data-testid=gallery-weight]', '');
    const all = await backend.gallerySearch({});
    await expect.poll(() => page.locator('[data-testid=gallery-item]').count(), { timeout: 10_000 }).toBe(all.length);
    // grouped by run: the DG run and its compare, each with its settings
    expect(await page.locator('[data-testid=gallery-run]').count()).toBe(new Set(all.map((a) => a.runId)).size);
    expect((await page.locator('[data-testid=gallery-run]').first().textContent())!.replace(/\s+/g, ' ')).toMatch(
      /Run #\d+ · .* · t0 0\.5, w [01], dpm\+\+2m-sde 8 steps/,
    );
    // delete asks first, and can be undone
    page.once('dialog', (d) => void d.accept());
    await page.locator('[data-testid=gallery-item]').first().click();
    await page.click('[data-testid=gallery-delete]');
    await expect.poll(() => page.locator('[data-testid=gallery-item]').count()).toBe(all.length - 1);
    await page.click('[data-testid=gallery-undo]');
    await expect.poll(() => page.locator('[data-testid=gallery-item]').count()).toBe(all.length);
    expect((await backend.gallerySearch({})).length).toBe(all.length);
    await page.locator('[data-testid=gallery-item]').first().click();
    await page.locator('[data-testid=gallery-detail]').waitFor();
    await page.locator('[data-testid=detail-source]').waitFor(); // the detail shows the source beside the result
    // chosen by keyboard, the detail takes the focus: Reuse is one Tab away (not past every other item)
    await page.locator('[data-testid=gallery-item]').nth(1).focus();
    await page.keyboard.press('Enter');
    const active = () =>
      page.evaluate(() =>
        (
          globalThis as unknown as { document: { activeElement: { getAttribute(n: string): string | null } } }
        ).document.activeElement.getAttribute('data-testid'),
      );
    await expect.poll(active).toBe('gallery-detail');
    await page.keyboard.press('Tab');
    expect(await active()).toBe('reuse');
    // tags: added with Enter, a click filters by it, × removes it
    await page.fill('[data-testid=tag-add]', 'keeper');
    await page.press('[data-testid=tag-add]', 'Enter');
    await page.locator('[data-testid=gallery-tags] .chip', { hasText: 'keeper' }).waitFor();
    await page.locator('[data-testid=gallery-tags] .chip button', { hasText: 'keeper' }).click();
    expect(await page.locator('[data-testid=gallery-tag]').inputValue()).toBe('keeper');
    await expect.poll(() => page.locator('[data-testid=gallery-item]').count(), { timeout: 10_000 }).toBe(1);
    expect((await backend.gallerySearch({ tag: 'keeper' })).length).toBe(1);
    await page.click('[aria-label="remove tag keeper"]');
    await page.locator('[data-testid=gallery-tags] .chip').waitFor({ state: 'detached' });
    await page.fill('[data-testid=gallery-tag]', '');
    await expect.poll(() => page.locator('[data-testid=gallery-item]').count(), { timeout: 10_000 }).toBe(all.length);
    expect(await page.locator('[data-testid=download]').getAttribute('download')).toMatch(/^photo \d-t0\.5-w[01]-\d+\.png$/);
    await page.click('[data-testid=copy-info]');
    await page
      .locator('[data-testid=toast]', { hasText: /generation info copied|Steps: 8, Sampler/ })
      .first()
      .waitFor();
    // or download them as one ZIP (a browser on another machine cannot open the server's folders)
    const download = page.waitForEvent('download');
    await page.click('[data-testid=gallery-zip]');
    const zip = await download;
    expect(zip.suggestedFilename()).toBe(`dg-studio-${all.length}-results.zip`);
    const zipped = unzipSync(new Uint8Array(await readFile((await zip.path())!)));
    expect(Object.keys(zipped).filter((n) => n.endsWith('.png'))).toHaveLength(all.length);
    expect(Object.keys(zipped).filter((n) => n.endsWith('.json'))).toHaveLength(all.length);
    expect(new TextDecoder().decode(Object.values(zipped).find((_, i) => Object.keys(zipped)[i]!.endsWith('.json')))).not.toContain(dir);
    // export what is shown: PNGs and sidecars named by source, in a new folder under the output folder
    await page.click('[data-testid=gallery-export]');
    const exported = page.locator('[data-testid=toast]', { hasText: /^exported \d+ PNGs? with their sidecars to / });
    await exported.first().waitFor();
    const folder = (await exported.first().textContent())!.replace(/^.* to /, '');
    const files = await readdir(folder);
    expect(files.filter((f) => f.endsWith('.png')).length).toBe(all.length);
    expect(files.every((f) => /^photo \d-\d+\.(png|json)$/.test(f))).toBe(true);
    await page.screenshot({ path: join(artifacts, 'gallery.png') });
    await page.click('[data-testid=reuse]');
    const toast = page.locator('[data-testid=toast]', { hasText: 'parameters of #' });
    await toast.waitFor();
    expect(await page.locator('[data-testid=steps]').inputValue()).toBe('8');
    // the model it was made with is chosen again (by the name the gallery recorded), not left to chance
    const made = all[0]!.modelName;
    expect(await toast.textContent()).toContain(`model "${made}"`);
    const shown = await page.locator('[data-testid=model-select]').evaluate((el) => {
      const sel = el as unknown as { selectedIndex: number; options: { text: string }[] };
      return sel.options[sel.selectedIndex]!.text;
    });
    expect(shown).toBe(made);
  });

  it('runs a 2×2 sweep and shows the realism–faithfulness plot, then the path diagnostics', async () => {
    await page.click('[data-testid=tab-sweep]');
    // a disabled Run says why, next to it
    expect(await page.locator('[data-testid=sweep-run-why]').textContent()).toMatch(
      /add at least 2 reference images of the target domain \(0 so far\)/,
    );
    await page.setInputFiles('[data-testid=reference-input]', images);
    await expect.poll(() => page.locator('[data-testid=sweep-run-why]').count(), { timeout: 10_000 }).toBe(0);
    await page.fill('[data-testid=sweep-w]', 'one, two');
    expect(await page.locator('[data-testid=sweep-w-error]').textContent()).toBe('"one", "two" are not a number from 0 to 100');
    expect(await page.locator('[data-testid=sweep-run]').isDisabled()).toBe(true);
    await page.fill('[data-testid=sweep-t0]', '0.3, 0.6');
    await page.fill('[data-testid=sweep-w]', '0, 1');
    await page.click('[data-testid=sweep-run]');
    await page.locator('[data-testid=sweep-plot]').waitFor({ timeout: 90_000 });
    expect(await page.locator('[data-testid=kid-note]').textContent()).toMatch(/unbiased estimate .* slightly negative/s);
    // the sources untranslated head the table: what doing nothing scores against the same reference
    expect(await page.locator('[data-testid=sweep-untranslated]').textContent()).toMatch(/^untranslated01\d+\.\d-?\d+\.\d\d-?\d+\.\d{3}$/);
    // the sweep is kept in the studio's state: a tab switch loses neither the plot nor the form
    await page.click('[data-testid=tab-translate]');
    await page.click('[data-testid=tab-sweep]');
    await page.locator('[data-testid=sweep-plot]').waitFor({ timeout: 5_000 });
    expect(await page.locator('[data-testid=sweep-w]').inputValue()).toBe('0, 1');
    const ok = await page.locator('[data-testid=sweep-plot]').evaluate((el) => {
      const img = el as unknown as { complete: boolean; naturalWidth: number };
      return img.complete && img.naturalWidth > 100;
    });
    expect(ok).toBe(true);
    await page.screenshot({ path: join(artifacts, 'sweep.png') });
    await page.locator('[data-testid=sweep-grid] button').first().click();
    await page.locator('[data-testid=sweep-opened]').waitFor();
    await page.click('[data-testid=sweep-opened]');
    await page.click('[data-testid=paths-run]');
    await page.locator('[data-testid=paths-plot]').waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(artifacts, 'paths.png') });
  });

  it('trains a discriminator for a few steps and offers it for translation', async () => {
    await page.click('[data-testid=tab-train]');
    await page.click('[data-testid=train-what-disc]');
    // checked as you type by the API's own schema: a disabled Train says why in words
    expect(await page.locator('[data-testid=train-run]').isDisabled()).toBe(true);
    expect(await page.locator('[data-testid=train-problem]').textContent()).toMatch(/source/i);
    await page.setInputFiles('[data-testid=train-sources]', images);
    await page.setInputFiles('[data-testid=train-targets]', images.slice().reverse());
    await page.fill('[data-testid=train-steps]', '0');
    await expect.poll(() => page.locator('[data-testid=train-problem]').textContent()).toMatch(/steps/i);
    await page.fill('[data-testid=train-steps]', '6');
    await expect.poll(() => page.locator('[data-testid=train-problem]').count()).toBe(0);
    // the design (Advanced): a 16×16 view, label smoothing and R1 reach the package's training record
    await page.click('[data-testid=train-advanced] summary');
    await page.selectOption('[data-testid=train-downsample]', { label: 'pooled 4× (about a seventh: guidance nearly free)' });
    await page.fill('[data-testid=train-label-smoothing]', '0.2');
    await page.fill('[data-testid=train-r1]', '2');
    await page.click('[data-testid=train-run]');
    await page.locator('[data-testid=train-done]').waitFor({ timeout: 120_000 });
    await page.screenshot({ path: join(artifacts, 'train.png') });
    const models = (await backend.listModels()).map((m) => m.id);
    expect(models).toContain('trained:my-discriminator');
    const manifest = JSON.parse(await readFile(join(dir, 'data', 'discriminators', 'my-discriminator', 'manifest.json'), 'utf8')) as {
      training: { architecture: { downsample: number }; labelSmoothing: number; r1Gamma: number };
    };
    expect([manifest.training.architecture.downsample, manifest.training.labelSmoothing, manifest.training.r1Gamma]).toEqual([4, 0.2, 2]);

    // its next round (dg-math §10): fakes guided by it; the new entry holds both rounds
    await page.fill('[data-testid=train-name]', 'my-discriminator-r2');
    await page.fill('[data-testid=train-steps]', '2');
    await page.selectOption('[data-testid=train-refine]', 'trained:my-discriminator');
    await page.click('[data-testid=train-run]');
    const round2File = join(dir, 'data', 'discriminators', 'my-discriminator-r2', 'manifest.json');
    await expect.poll(() => existsSync(round2File), { timeout: 120_000 }).toBe(true);
    const round2 = JSON.parse(await readFile(round2File, 'utf8')) as {
      refinements: { onnx: string; training: { steps: number; data: { guidedBy: unknown } } }[];
    };
    expect(round2.refinements.map((r) => [r.onnx, r.training.steps])).toEqual([['round2.onnx', 2]]);
    expect(round2.refinements[0]!.training.data.guidedBy).toBeTruthy();
  });

  /** Start a tiny (width 8) score-model training on the test images from the Train tab. */
  async function startScoreTraining(name: string, steps: number, edm = false) {
    await page.click('[data-testid=tab-train]');
    await page.click('[data-testid=train-what-score]');
    await page.setInputFiles('[data-testid=train-targets]', images);
    await page.fill('[data-testid=score-name]', name);
    await page.fill('[data-testid=score-steps]', String(steps));
    await page.fill('[data-testid=score-channels]', '8');
    if (edm) await page.check('[data-testid=score-edm]');
    await page.click('[data-testid=score-run]');
  }

  it('trains a target score model for a few steps in the app, and offers it for translation', async () => {
    await startScoreTraining('tiny-target', 3, true);
    await page.locator('[data-testid=score-done]').waitFor({ timeout: 120_000 });
    expect(await page.locator('[data-testid=score-done]').textContent()).toMatch(/after 3 steps/);
    await page.locator('[data-testid=score-preview]').waitFor();
    // the loss curve has labelled axes: three loss ticks and the step range
    expect(await page.locator('[data-testid=loss-tick]').count()).toBe(3);
    expect(await page.locator('[data-testid=loss-curve]').textContent()).toMatch(/step \d+[\s\S]*3[\s\S]*loss \(last \d+ steps?\)/);
    await page.screenshot({ path: join(artifacts, 'train-score.png') });
    const models = await backend.listModels();
    expect(models.find((m) => m.id === 'trained-score:tiny-target')?.kind).toBe('score');
    // asked for EDM preconditioning (dg-math §9): recorded with the model
    const trained = JSON.parse(await readFile(join(dir, 'data', 'score-models', 'tiny-target', 'manifest.json'), 'utf8'));
    expect([trained.training.precond, trained.training.noiseLevels]).toEqual(['edm', [{ step: 0, p_mean: -1.2, p_std: 1.2 }]]);
  });

  it('a training survives a tab switch and a reload, can be cancelled from the jobs panel, and what it learned is offered', async () => {
    await startScoreTraining('long-target', 5000);
    await page.locator('[data-testid=train-cancel]').waitFor({ timeout: 60_000 });
    await page.click('[data-testid=tab-gallery]');
    await page.click('[data-testid=tab-train]');
    await page.locator('[data-testid=train-cancel]').waitFor();
    await page.reload();
    await page.click('[data-testid=tab-train]');
    await page.locator('[data-testid=train-progress]').waitFor();
    // a translation started now runs beside it and finishes while the training is still running (it used to wait)
    await page.click('[data-testid=tab-translate]');
    if ((await page.locator('[data-testid=source]').count()) === 0) await page.click('[data-testid=try-samples]');
    const before = new Set((await backend.listJobs()).map((j) => j.id));
    await page.click('[data-testid=run]');
    await expect
      .poll(async () => (await backend.listJobs()).find((j) => !before.has(j.id) && j.kind === 'translate')?.state, { timeout: 60_000 })
      .toBe('done');
    const training = (await backend.listJobs()).find((j) => j.kind === 'train-score-model' && j.label.includes('long-target'))!;
    expect(training.state).toBe('running');
    await page.click('[data-testid=tab-train]');
    // the jobs panel, reachable from any tab, lists it with a Cancel of its own
    await page.click('[data-testid=tab-gallery]');
    await page.click('[data-testid=jobs-badge]');
    await page.locator('[data-testid=jobs-row]', { hasText: 'long-target' }).waitFor();
    await page.screenshot({ path: join(artifacts, 'jobs-panel.png') });
    await page.locator('[data-testid=jobs-row]', { hasText: 'long-target' }).locator('[data-testid=jobs-cancel]').click();
    await page.click('[data-testid=tab-train]');
    await expect.poll(() => page.locator('[data-testid=train-progress]').textContent(), { timeout: 60_000 }).toMatch(/cancelled/);
    // and says what was saved, not only "cancelled"
    expect(await page.locator('[data-testid=train-saved]').textContent()).toMatch(/Stopped at step \d+: what it learned so far was saved/);
    await expect
      .poll(async () => (await backend.listModels()).some((m) => m.id === 'trained-score:long-target'), { timeout: 60_000 })
      .toBe(true);
    await page.click('[data-testid=tab-translate]');
    expect(await page.locator('select').first().textContent()).toMatch(/long-target/);
  });

  it('imports a model from its manifest and ONNX file, and explains a broken manifest in words', async () => {
    await page.click('[data-testid=tab-settings]');
    const toy = join(root, 'test', 'fixtures', 'toy-resources', 'models', 'toy-gaussian-64');
    // the bundled model again: refused, naming the one in the list (it used to be listed twice)
    await page.setInputFiles('[data-testid=import-files]', [join(toy, 'manifest.json'), join(toy, 'model.onnx')]);
    await page.locator('[data-testid=toast]', { hasText: /already in the list as "Toy sunset/ }).waitFor();
    // the same network with other settings is another model: imported
    const variant = join(dir, 'variant.json');
    const toyManifest = JSON.parse(await readFile(join(toy, 'manifest.json'), 'utf8'));
    await writeFile(variant, JSON.stringify({ ...toyManifest, name: 'Toy sunset, capped', validTimeRange: [0, 0.9] }));
    await page.setInputFiles('[data-testid=import-files]', [variant, join(toy, 'model.onnx')]);
    await page.locator('[data-testid=toast]', { hasText: 'imported "Toy sunset, capped' }).waitFor();
    const bad = join(dir, 'broken.json');
    await writeFile(bad, JSON.stringify({ format: 'dg-studio/score-model@1', name: 'broken', onnx: 'model.onnx', prediction: 'noise' }));
    await page.setInputFiles('[data-testid=import-files]', [bad]);
    const t = page.locator('[data-testid=toast]', { hasText: /import failed: invalid manifest/ });
    await t.waitFor();
    expect(await t.textContent()).toMatch(/invalid manifest[\s\S]*prediction/);
    // a bare .onnx: inspect's proposal is shown, checked, editable, and imports
    await page.setInputFiles('[data-testid=import-files]', [join(root, 'test', 'fixtures', 'inspect', 'unet-class', 'model.onnx')]);
    await page.locator('[data-testid=proposal-ok]').waitFor();
    expect(await page.locator('[data-testid=proposal]').textContent()).toMatch(
      /a score model[\s\S]*class_labels[\s\S]*class-conditional, 5 classes/,
    );
    const text = await page.inputValue('[data-testid=proposal-text]');
    await page.fill('[data-testid=proposal-text]', text.replace('"name": "model"', '"name": "class U-Net"'));
    await page.screenshot({ path: join(artifacts, 'import-proposal.png') });
    await page.click('[data-testid=proposal-import]');
    await page.locator('[data-testid=toast]', { hasText: 'imported "class U-Net"' }).waitFor();
    await page.selectOption('[data-testid=settings-ep]', 'cuda');
    await page.click('[data-testid=settings-save]');
    await page.locator('[data-testid=toast]', { hasText: 'settings saved' }).waitFor();
    expect((await backend.getSettings()).executionProvider).toBe('cuda');
    await page.screenshot({ path: join(artifacts, 'settings.png') });
  });

  it("starts from a chosen model's recommended t0, keeps the user's change across a tab switch, and goes back to it in one click", async () => {
    const toy = join(root, 'test', 'fixtures', 'toy-resources', 'models', 'toy-gaussian-64');
    const rec = join(dir, 'recommending');
    await mkdir(rec, { recursive: true });
    const m = JSON.parse(await readFile(join(toy, 'manifest.json'), 'utf8'));
    await writeFile(join(rec, 'manifest.json'), JSON.stringify({ ...m, name: 'Toy at t0 0.3', recommendedT0: 0.3 }));
    await page.click('[data-testid=tab-settings]');
    await page.setInputFiles('[data-testid=import-files]', [join(rec, 'manifest.json'), join(toy, 'model.onnx')]);
    await page.locator('[data-testid=toast]', { hasText: 'imported "Toy at t0 0.3"' }).waitFor();
    await page.click('[data-testid=tab-translate]');
    const t0 = () => page.locator('[data-testid=t0]').inputValue();
    expect(await t0()).toBe('0.5');
    const select = page.locator('select').first();
    await select.selectOption({ label: 'Toy at t0 0.3' });
    await expect.poll(t0).toBe('0.3');
    expect(await page.locator('[data-testid=recommended-t0]').count()).toBe(0);
    await page.locator('[data-testid=t0]').fill('0.6');
    await page.click('[data-testid=tab-gallery]');
    await page.click('[data-testid=tab-translate]');
    expect(await t0()).toBe('0.6');
    await page.click('[data-testid=recommended-t0]');
    expect(await t0()).toBe('0.3');
    // back to the bundled model (it recommends nothing) and the t0 the later tests expect
    await select.selectOption({ index: 0 });
    await page.locator('[data-testid=t0]').fill('0.5');
  });

  it('a Stable Diffusion-family folder from the settings takes a prompt, a negative prompt and a CFG scale, and no pixel discriminator', async () => {
    await page.click('[data-testid=tab-settings]');
    await page.fill('[data-testid=settings-model-folders]', join(root, 'test', 'fixtures', 'tiny-sd'));
    await page.click('[data-testid=settings-save]');
    await page.locator('[data-testid=toast]', { hasText: 'settings saved' }).waitFor();
    await page.click('[data-testid=tab-translate]');
    expect(await page.locator('[data-testid=text-conditioning]').count()).toBe(0);
    const dgBefore = await page.locator('[data-testid=weight]').inputValue();
    await page.locator('[data-testid=model-select]').selectOption({ label: 'diffusers' });
    await page.locator('[data-testid=text-conditioning]').waitFor();
    await page.fill('[data-testid=prompt]', 'a watercolour');
    expect(await page.locator('[data-testid=weight]').isDisabled()).toBe(true);
    expect(await page.locator('[data-testid=weight]').inputValue()).toBe('0');
    // the bundled discriminator is a pixel one: a latent model is offered only discriminators trained on latents
    expect(await page.locator('[data-testid=discriminator-select] option').allTextContents()).toEqual(['none (no DG)']);
    expect(await page.locator('[data-testid=model-domain]').textContent()).toMatch(/keeps its aspect.*none is imported yet/s);
    await page.screenshot({ path: join(artifacts, 'latent-model.png') });
    // back to the bundled model and its weight, as the later tests expect
    await page.locator('[data-testid=model-select]').selectOption({ index: 0 });
    await page.locator('[data-testid=weight]').fill(dgBefore);
    await page.click('[data-testid=tab-settings]');
    await page.fill('[data-testid=settings-model-folders]', '');
    await page.click('[data-testid=settings-save]');
    await page.click('[data-testid=tab-translate]');
  });

  it('the gallery tells an unreachable server from an empty result, and tries again', async () => {
    await page.route('**/api/gallerySearch', (r) => r.abort());
    await page.click('[data-testid=tab-gallery]');
    const error = page.locator('[data-testid=gallery-error]');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/does not answer/);
    expect(await page.locator('[data-testid=gallery-empty]').count()).toBe(0);
    await page.unroute('**/api/gallerySearch');
    await error.getByRole('button', { name: 'Try again' }).click();
    await error.waitFor({ state: 'detached' });
    expect(await page.locator('[data-testid=gallery-empty]').count()).toBe(0); // the earlier tests' results are back
    await page.click('[data-testid=tab-translate]');
  });

  it('? lists the keyboard shortcuts (not while typing), Esc closes the list', async () => {
    await page.click('[data-testid=tab-gallery]');
    await page.locator('[data-testid=gallery-search]').focus();
    await page.keyboard.type('?');
    expect(await page.locator('[data-testid=shortcuts]').count()).toBe(0);
    // a search nothing matches says so (not "nothing yet")
    await page.locator('[data-testid=gallery-empty]', { hasText: 'No result matches these filters' }).waitFor();
    await page.locator('[data-testid=gallery-search]').fill('');
    await page.locator('[data-testid=gallery-empty]').waitFor({ state: 'detached' });
    await page.locator('h1').click();
    await page.keyboard.press('?');
    const list = page.locator('[data-testid=shortcuts]');
    await list.waitFor();
    expect(await list.textContent()).toMatch(/Alt\+1 … Alt\+6.*Ctrl\+Enter/s);
    await page.screenshot({ path: join(artifacts, 'shortcuts.png') });
    await page.keyboard.press('Escape');
    await list.waitFor({ state: 'detached' });
    await page.click('[data-testid=tab-translate]');
  });

  it('the Train form keeps what was typed across a tab switch and a reload', async () => {
    await page.click('[data-testid=tab-train]');
    await page.click('[data-testid=train-what-disc]');
    await page.fill('[data-testid=train-steps]', '123');
    await page.click('[data-testid=tab-gallery]');
    await page.click('[data-testid=tab-train]');
    expect(await page.locator('[data-testid=train-steps]').inputValue()).toBe('123');
    await page.reload();
    await page.click('[data-testid=tab-train]');
    await expect.poll(() => page.locator('[data-testid=train-steps]').inputValue()).toBe('123');
    await page.fill('[data-testid=train-steps]', '200');
    await page.click('[data-testid=train-what-score]');
    await page.click('[data-testid=tab-translate]');
  });

  it('remembers the theme across a reload, and dark means dark form controls too', async () => {
    const theme = () => page.locator('.app').getAttribute('data-theme');
    const before = await theme();
    await page.click('[data-testid=theme]');
    const after = before === 'dark' ? 'light' : 'dark';
    expect(await theme()).toBe(after);
    await page.reload();
    await page.locator('[data-testid=tab-translate]').waitFor();
    expect(await theme()).toBe(after);
    if (after !== 'dark') await page.click('[data-testid=theme]');
    await page.click('[data-testid=tab-translate]');
    const bg = await page
      .locator('[data-testid=steps]')
      .evaluate(
        (el) =>
          (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor,
      );
    expect(bg).toBe('rgb(34, 34, 38)'); // the dark panel colour, not the browser's white
    await page.screenshot({ path: join(artifacts, 'translate-dark.png') });
    await page.click('[data-testid=theme]');
    // every tab, in both themes, holds at 1440×900 and 1024×700: no sideways scrolling (and a
    // screenshot of each to look at: test-artifacts/<theme>-<width>-<tab>.png)
    for (const themeName of ['light', 'dark']) {
      if ((await theme()) !== themeName) await page.click('[data-testid=theme]');
      for (const [w, h] of [
        [1440, 900],
        [1024, 700],
      ] as const) {
        await page.setViewportSize({ width: w, height: h });
        for (const tab of ['translate', 'gallery', 'sweep', 'train', 'annotate', 'settings']) {
          await page.click(`[data-testid=tab-${tab}]`);
          const width = await page.evaluate(
            () =>
              (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth,
          );
          await page.screenshot({ path: join(artifacts, `${themeName}-${w}-${tab}.png`) });
          expect([themeName, tab, width]).toEqual([themeName, tab, w]);
        }
      }
    }
    if ((await theme()) !== 'light') await page.click('[data-testid=theme]');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('a scripted annotator completes a blind study by keyboard, and the export matches the keys', async () => {
    await page.click('[data-testid=tab-annotate]');
    await page.click('[data-testid=study-create]');
    await page.locator('[data-testid=study-select] option').first().waitFor({ state: 'attached' });
    await page.fill('[data-testid=annotator]', 'tester');
    await page.click('[data-testid=study-start]');
    const keys = ['ArrowLeft', 'ArrowRight', '0', 'ArrowRight', 'ArrowLeft', 'ArrowRight'];
    const pressed: string[] = [];
    await page.locator('[data-testid=study-item]').waitFor();
    // one mistake, undone with U
    await page.keyboard.press('ArrowRight');
    await page.locator('[data-testid=study-progress]', { hasText: /^1\// }).waitFor();
    await page.keyboard.press('u');
    await page.locator('[data-testid=study-progress]', { hasText: /^0\// }).waitFor();
    for (const key of keys) {
      if (await page.locator('[data-testid=study-finished]').isVisible()) break;
      const before = await page.locator('[data-testid=study-progress]').textContent();
      await page.keyboard.press(key);
      pressed.push(key);
      await page.waitForFunction((b) => {
        const doc = (globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document;
        return doc.querySelector('[data-testid=study-progress]')?.textContent !== b || !!doc.querySelector('[data-testid=study-finished]');
      }, before);
    }
    await page.locator('[data-testid=study-finished]').waitFor();
    // the annotator sees no results and no attention-check verdicts (they would bias the rest of a session)
    expect(await page.locator('[data-testid=study-finished]').textContent()).not.toMatch(/preferred|attention|κ/);
    await page.screenshot({ path: join(artifacts, 'study-done.png') });
    // the owner's view names every setting with its Bradley–Terry strength
    await page.getByRole('button', { name: 'Back' }).click();
    await page.click('[data-testid=study-summary-show]');
    await page.locator('[data-testid=study-summary]').waitFor();
    const settingsShown = await page.locator('[data-testid=study-setting]').allTextContents();
    expect(settingsShown).toHaveLength(2);
    expect(settingsShown.join('\n')).toMatch(/SDEdit, t0 0\.5[\s\S]*-?\d\.\d\d/);
    expect(settingsShown.join('\n')).toMatch(/DG w 1, t0 0\.5/);
    const studyId = (await backend.listStudies())[0]!.id;
    const csv = await backend.studyExport(studyId);
    // RFC 4180, read back with a CSV parser (numbers as numbers)
    const rows = parseCsv(csv, { columns: true, cast: true }) as Record<string, string | number>[];
    const live = rows.filter((r) => r['undone'] === 0);
    expect(rows.filter((r) => r['undone'] === 1)).toHaveLength(1);
    expect(live.map((r) => r['annotator'])).toEqual(pressed.map(() => 'tester'));
    live.forEach((r, i) => {
      const key = pressed[i]!;
      const expected = key === '0' ? 'tie' : (key === 'ArrowLeft') === (r['left_is_a'] === 1) ? 'a' : 'b';
      expect(r['choice']).toBe(expected);
    });
    const json = JSON.parse(await backend.studyExport(studyId, 'json')) as { rows: unknown[]; summary: { judgements: number } };
    expect(json.rows).toHaveLength(rows.length);
    expect(json.summary.judgements).toBe(live.length);
  });

  it('an annotator link opens only the study, in a browser without the owner token, and the judgement lands under its name', async () => {
    await page.click('[data-testid=tab-annotate]');
    await page.fill('[data-testid=link-annotator]', 'remote ann');
    await page.click('[data-testid=link-create]');
    const url = (await page.locator('[data-testid=link-url]').textContent())!;
    expect(url).toMatch(/\/\?a=dga_/);
    expect(url).not.toContain(server.token);
    // another browser profile: no owner cookie, no owner token anywhere
    const other = await browser.newContext({ viewport: { width: 1024, height: 700 } });
    try {
      const ann = await other.newPage();
      const calls: string[] = [];
      ann.on('request', (r) => calls.push(r.url()));
      await ann.goto(url);
      await ann.locator('[data-testid=study-item]').waitFor();
      expect(await ann.locator('[data-testid=annotator-name]').textContent()).toBe('judging as remote ann');
      expect(await ann.locator('[data-testid=tab-gallery]').count()).toBe(0);
      const srcs = await ann.locator('[data-testid=study-item] img').evaluateAll((els) => els.map((e) => e.getAttribute('src')));
      for (const src of srcs) expect(src).toMatch(/^\/files\/blind\/[0-9a-f]{32}$/);
      // every image loads (the annotator's own cookie, set by the link); a refused one would never get a width
      await ann.waitForFunction(
        () => {
          const doc = (
            globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<{ complete: boolean; naturalWidth: number }> } }
          ).document;
          const imgs = Array.from(doc.querySelectorAll('[data-testid=study-item] img'));
          return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth > 0);
        },
        undefined,
        { timeout: 10_000 },
      );
      await ann.keyboard.press('ArrowLeft');
      await ann.locator('[data-testid=study-progress]', { hasText: /^1\// }).waitFor();
      await ann.screenshot({ path: join(artifacts, 'annotator-link.png') });
      expect(calls.some((c) => /\/session|\/events|\/api\/(?!annotator)/.test(c))).toBe(false);
      const studyId = (await backend.listStudies())[0]!.id;
      const rows = JSON.parse(await backend.studyExport(studyId, 'json')) as { rows: { annotator: string }[] };
      expect(rows.rows.filter((r) => r.annotator === 'remote ann')).toHaveLength(1);
    } finally {
      await other.close();
    }
  });
});
