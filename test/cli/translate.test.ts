import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readPngText } from '../../src/main/engine/io/image-io.js';
import { AnnotatorLinks } from '../../src/main/services/annotator-links.js';
import { Gallery } from '../../src/main/services/gallery.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const cli = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), ...args], { cwd: root }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

describe('dg-studio translate (CLI)', async () => {
  const dir = await tempDir();
  const inDir = join(dir, 'in dir');
  await sharp({ create: { width: 30, height: 40, channels: 3, background: '#3366cc' } })
    .png()
    .toFile(join(dir, 'a.png'))
    .then(() => import('node:fs/promises').then((fs) => fs.mkdir(inDir)))
    .then(() =>
      sharp({ create: { width: 64, height: 64, channels: 4, background: '#cc3333' } })
        .png()
        .toFile(join(inDir, 'b é.png')),
    );

  /** `a.png`, two steps, into `out`, one JSON record per output, no gallery: the quick runs these tests compare */
  /** a copy of a toy fixture model (its manifest and one data file) with manifest fields changed */
  const toyWith = async (fixture: string, file: string, name: string, fields: Record<string, unknown>) => {
    const from = join(root, 'test', 'fixtures', 'toy-resources', 'models', fixture);
    const to = join(dir, name);
    await mkdir(to, { recursive: true });
    await copyFile(join(from, file), join(to, file));
    const m = JSON.parse(await readFile(join(from, 'manifest.json'), 'utf8'));
    await writeFile(join(to, 'manifest.json'), JSON.stringify({ ...m, ...fields }));
    return to;
  };
  const translateA = (options: string[], out: string) =>
    cli(['translate', join(dir, 'a.png'), ...options, '--steps', '2', '--out', out, '--json', '--no-gallery']);

  it('a DG weight without a discriminator warns and records what was done: plain SDEdit (w = 0)', async () => {
    const out = join(dir, 'no-disc');
    const r = await translateA(['--no-discriminator', '--dg-weight', '2'], out);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: DG weight 2 was given but no discriminator: translating without guidance \(recorded as w = 0\)/);
    const rec = JSON.parse(r.stdout.trim().split('\n')[0]!);
    expect(rec.output).toMatch(/a-t0\.5-w0-0\.png$/);
    expect((await readPngText(rec.output))['parameters']).toMatch(/DG weight: 0, DG weight 2: 0,/);
  });

  it('the first line states the network evaluations; --keep-names writes outputs under the input names, never over an earlier one', async () => {
    const out = join(dir, 'keep');
    const args = [
      'translate',
      join(dir, 'a.png'),
      inDir,
      '--no-discriminator',
      '--sampler',
      'heun',
      '--steps',
      '4',
      '--t0',
      '0.6',
      '--out',
      out,
      '--no-gallery',
      '--keep-names',
    ];
    const r = await cli(args);
    expect(r.code).toBe(0);
    expect(r.stderr.split('\n').filter((l) => !l.startsWith('note:'))[0]).toBe(
      'Heun, 4 steps over [0, 0.6] = 7 network evaluations per image',
    );
    expect((await readdir(out)).sort()).toEqual(['a.json', 'a.png', 'b é.json', 'b é.png']);
    const again = await cli([...args, '--sampler', 'ddim']);
    expect(again.stderr).toMatch(/DDIM, 4 steps over \[0, 0\.6\] = 4 network evaluations per image/);
    expect(again.stderr).toMatch(/warning: "a\.png" is taken in .*keep .*a\.png → a-1\.png/);
    expect((await readdir(out)).filter((f) => f.endsWith('.png')).sort()).toEqual(['a-1.png', 'a.png', 'b é-1.png', 'b é.png']);
  });

  it('a model given as a folder and no DG weight: plain SDEdit, no warning (the weight applies only with a discriminator)', async () => {
    const out = join(dir, 'folder-model');
    const model = join(root, 'test', 'fixtures', 'toy-resources', 'models', 'toy-gaussian-64');
    const r = await translateA(['--model', model], out);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/warning/);
    expect(JSON.parse(r.stdout.trim().split('\n')[0]!).output).toMatch(/a-t0\.5-w0-0\.png$/);
    // a discriminator folder: the weight defaults to 1
    const disc = join(root, 'test', 'fixtures', 'toy-resources', 'models', 'toy-gaussian-64-dg');
    const g = await translateA(['--model', model, '--discriminator', disc], out);
    expect(g.code).toBe(0);
    expect(JSON.parse(g.stdout.trim().split('\n')[0]!).output).toMatch(/a-t0\.5-w1-0\.png$/);
  });

  it('a command line too long for ONNX Runtime (`translate photos/*.png` on many files) is run from an argument file', async () => {
    // onnxruntime-node crashed with SIGSEGV and no message creating its session past ~30 KB of command line
    const many = join(dir, 'd'.repeat(200));
    await mkdir(many);
    const files = Array.from({ length: 150 }, (_, i) => join(many, `image-${String(i).padStart(3, '0')}.png`));
    for (const f of files) await copyFile(join(dir, 'a.png'), f);
    expect(files.join(' ').length).toBeGreaterThan(32 * 1024);
    const out = join(dir, 'many');
    const r = await cli(['translate', ...files, '--steps', '1', '--batch-size', '50', '--out', out, '--keep-names', '--no-gallery']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/done: 150 written/);
    expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(150);
  });

  it("a discriminator's recommended weight is the default w; --dg-weight still wins", async () => {
    const disc = await toyWith('toy-gaussian-64-dg', 'mean.png', 'recommending-disc', { recommendedWeight: 3 });
    const out = join(dir, 'recommended');
    const r = await translateA(['--discriminator', disc], out);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n')[0]!).output).toMatch(/a-t0\.5-w3-0\.png$/);
    const given = await translateA(['--discriminator', disc, '--dg-weight', '0.5'], out);
    expect(JSON.parse(given.stdout.trim().split('\n')[0]!).output).toMatch(/a-t0\.5-w0\.5-0\.png$/);
  });

  it("a model's recommended t0 is the default t0; --t0 still wins; one outside the model's times is refused", async () => {
    const model = await toyWith('toy-gaussian-64', 'model.onnx', 'recommending-model', { recommendedT0: 0.3 });
    const out = join(dir, 'recommended-t0');
    const r = await translateA(['--model', model], out);
    expect(r.code).toBe(0);
    const rec = JSON.parse(r.stdout.trim().split('\n')[0]!);
    expect(rec.params.t0).toBe(0.3);
    expect(rec.output).toMatch(/a-t0\.3-/);
    const given = await translateA(['--model', model, '--t0', '0.6'], out);
    expect(JSON.parse(given.stdout.trim().split('\n')[0]!).params.t0).toBe(0.6);
    await toyWith('toy-gaussian-64', 'model.onnx', 'recommending-model', { validTimeRange: [0, 0.5], recommendedT0: 0.7 });
    const bad = await translateA(['--model', model], out);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/recommendedT0 0\.7 is outside validTimeRange/);
  });

  it("a model's recommended σ floor ends the ladder unless --sigma-min gives another; the PNG records a given one", async () => {
    const model = await toyWith('toy-gaussian-64', 'model.onnx', 'floored-model', { recommendedSigmaMin: 0.3 });
    const plainModel = await toyWith('toy-gaussian-64', 'model.onnx', 'unfloored-model', {});
    const out = join(dir, 'floor');
    // the pixels (the PNGs' text differs: the parameters line, the model's name and hash)
    const bytes = async (r: { stdout: string }) =>
      sharp(JSON.parse(r.stdout.trim().split('\n')[0]!).output)
        .raw()
        .toBuffer();
    const byModel = await translateA(['--model', model, '--seed', '5'], join(out, 'a'));
    const byFlag = await translateA(['--model', plainModel, '--seed', '5', '--sigma-min', '0.3'], join(out, 'b'));
    const none = await translateA(['--model', plainModel, '--seed', '5'], join(out, 'c'));
    for (const r of [byModel, byFlag, none]) expect(r.code).toBe(0);
    expect((await bytes(byModel)).equals(await bytes(byFlag))).toBe(true);
    expect((await bytes(byModel)).equals(await bytes(none))).toBe(false);
    const rec = JSON.parse(byFlag.stdout.trim().split('\n')[0]!);
    expect(rec.params.sigmaMin).toBe(0.3);
    expect((await readPngText(rec.output))['parameters']).toMatch(/Spacing: karras, Sigma min: 0\.3,/);
    expect(JSON.parse(byModel.stdout.trim().split('\n')[0]!).params.sigmaMin).toBeNull();
    const bad = await translateA(['--sigma-min', '0'], out);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--sigma-min/);
  });

  it('train-discriminator refuses --steps 0 in words', async () => {
    const r = await cli(['train-discriminator', '--source', dir, '--target', dir, '--steps', '0', '--out', join(dir, 'never')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--steps must be at least 1, got "0"/);
  });

  it('translates files and folders with the bundled default, embedding parameters in PNG and sidecar', async () => {
    const out = join(dir, 'out');
    const r = await cli(['translate', join(dir, 'a.png'), inDir, '--steps', '4', '--seed', '7', '--t0', '0.4', '--out', out, '--json']);
    expect(r.stderr).toContain('translating 2 image(s)');
    expect(r.code).toBe(0);
    const records = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records.map((x) => x.seed)).toEqual([7, 8]);
    const files = (await readdir(out)).sort();
    expect(files).toHaveLength(4);
    const text = await readPngText(records[1].output);
    expect(text['parameters']).toMatch(/^Source: b é\.png\nSteps: 4, Sampler: dpm\+\+2m-sde, t0: 0\.4, DG weight: 1.*Seed: 8/);
    const sidecar = JSON.parse(await readFile(records[1].sidecar, 'utf8'));
    expect(sidecar.params.t0).toBe(0.4);
    expect(sidecar.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    // a shared PNG or sidecar names files and digests, never where they are (no absolute path anywhere)
    const chunk = JSON.parse(text['dg-studio']!);
    expect(chunk).toMatchObject({ source: 'b é.png', sourceSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    for (const shared of [JSON.stringify(chunk), JSON.stringify(sidecar), text['parameters']!]) {
      expect(shared).not.toContain(dir);
      expect(shared).not.toContain(root);
      expect(shared).not.toMatch(/"\/[^"]*"/);
    }
    const meta = await sharp(records[0].output).metadata();
    expect([meta.width, meta.height]).toEqual([64, 64]);
  });

  it('the same seed and parameters give bit-identical images', async () => {
    const args = (o: string) => ['translate', join(dir, 'a.png'), '--steps', '3', '--seed', '3', '--out', join(dir, o), '--json'];
    const [a, b] = [await cli(args('r1')), await cli(args('r2'))];
    const [pa, pb] = [JSON.parse(a.stdout).output, JSON.parse(b.stdout).output];
    const [ra, rb] = await Promise.all([pa, pb].map((p: string) => sharp(p).raw().toBuffer()));
    expect(ra!.equals(rb!)).toBe(true);
  });

  it('exits non-zero with a clear message on bad input, keeping the good images', async () => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'bad.png'), 'not a png');
    const r = await cli(['translate', join(dir, 'a.png'), join(dir, 'bad.png'), '--steps', '2', '--out', join(dir, 'o3')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: cannot read "bad.png": not an image/);
    expect(r.stderr).toMatch(/done: 1 written .*1 failed/);
    const missing = await cli(['translate', join(dir, 'nope.png')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/input ".*nope.png" does not exist/);
    const badT0 = await cli(['translate', join(dir, 'a.png'), '--t0', '1.5']);
    expect(badT0.code).toBe(2);
    expect(badT0.stderr).toMatch(/t0 must be in \(0, 1\]/);
    const badModel = await cli(['translate', join(dir, 'a.png'), '--model', join(dir, 'a.png')]);
    expect(badModel.code).toBe(2);
    expect(badModel.stderr).toMatch(/cannot read score-model manifest ".*a.png": not valid JSON/);
  });

  it('inspect then translate with classifier guidance: the class and CG weight are recorded, a missing class is an error', async () => {
    const fx = join(root, 'test', 'fixtures', 'inspect');
    const [unet, cls] = [join(dir, 'cg-unet'), join(dir, 'cg-cls')];
    await mkdir(unet);
    await mkdir(cls);
    await copyFile(join(fx, 'unet-diffusers', 'model.onnx'), join(unet, 'model.onnx'));
    await copyFile(join(fx, 'classifier', 'model.onnx'), join(cls, 'model.onnx'));
    expect((await cli(['inspect', join(unet, 'model.onnx')])).code).toBe(0);
    expect((await cli(['inspect', join(cls, 'model.onnx'), '--name', 'toy classifier'])).code).toBe(0);
    const args = [
      'translate',
      join(dir, 'a.png'),
      '--model',
      unet,
      '--classifier',
      cls,
      '--steps',
      '2',
      '--out',
      join(dir, 'cg'),
      '--no-gallery',
      '--json',
    ];
    const r = await cli([...args, '--class-label', '2']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\+ CG "toy classifier: class-2" \(w = 1\)/);
    const rec = JSON.parse(r.stdout.trim().split('\n')[0]!);
    expect(rec.classifier).toMatchObject({ name: 'toy classifier', className: 'class-2' });
    expect((await readPngText(rec.output))['parameters']).toMatch(
      /Class: 2, CG weight: 1, .*Classifier: toy classifier, Classifier hash: \w{10}, Class name: class-2/,
    );
    const noClass = await cli(args);
    expect(noClass.code).toBe(2);
    expect(noClass.stderr).toMatch(/classifier guidance needs a class: give the class label \(--class-label k\)/);
  });

  it('every command reads numbers by the same rules: counts ≥ 1, seeds 0…2³²−1, weights ≥ 0 (exit 2, naming the option)', async () => {
    const cases: [string[], RegExp][] = [
      [['translate', join(dir, 'a.png'), '--batch-size', '0'], /--batch-size must be at least 1, got "0"/],
      [['train-score-model', '--data', dir, '--out', join(dir, 'x'), '--batch', '0'], /--batch must be at least 1, got "0"/],
      [['sweep', '--reference', dir, '--seed', '-1'], /--seed must be a whole number in 0…4294967295, got "-1"/],
      [['translate', join(dir, 'a.png'), '--dg-weight', '-1'], /--dg-weight must be 0 or more, got "-1"/],
      [
        ['train-discriminator', '--source', dir, '--target', dir, '--out', join(dir, 'x'), '--eval-every', '0'],
        /--eval-every must be at least 1/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect([args[0], r.code]).toEqual([args[0], 2]);
      expect(r.stderr).toMatch(message);
    }
  });

  it("the README's study command works as written: two settings from two translations into one gallery (--gallery, or the old --dir)", async () => {
    const gallery = join(dir, 'study-gallery');
    const sources = [join(dir, 'a.png'), join(inDir, 'b é.png')];
    for (const w of ['0', '32']) {
      const r = await cli([
        'translate',
        ...sources,
        '--t0',
        '0.5',
        '--dg-weight',
        w,
        '--steps',
        '2',
        '--out',
        join(dir, `study-${w}`),
        '--gallery',
        gallery,
      ]);
      expect(r.code).toBe(0);
    }
    // the README: dg-studio study create --name DG --setting "t0=0.5,w=0" --setting "t0=0.5,w=32" --question realism
    const create = ['study', 'create', '--name', 'DG', '--setting', 't0=0.5,w=0', '--setting', 't0=0.5,w=32', '--question', 'realism'];
    const r = await cli([...create, '--gallery', gallery]);
    expect(r.stderr).toMatch(/created study \d+/);
    expect([r.code, Number(r.stdout.trim())]).toEqual([0, 1]);
    const old = await cli([...create, '--dir', gallery]);
    expect([old.code, Number(old.stdout.trim())]).toEqual([0, 2]);
    // one setting is not a study: refused in words, by the same schema the studio's API uses
    const one = await cli(['study', 'create', '--name', 'DG', '--setting', 't0=0.5,w=0', '--gallery', gallery]);
    expect(one.code).toBe(2);
    expect(one.stderr).toMatch(/error: settings: .*2/);
    // an annotator link from the CLI: printed once, working for that study and name only
    const link = await cli(['study', 'link', '1', '--annotator', 'ada', '--gallery', gallery]);
    expect(link.code).toBe(0);
    const token = decodeURIComponent(/\/\?a=(\S+)$/.exec(link.stdout.trim())![1]!);
    const g = await Gallery.open(gallery);
    try {
      expect(new AnnotatorLinks(g).grant(token)).toMatchObject({ studyId: 1, annotator: 'ada' });
      expect(g.db.prepare('SELECT COUNT(*) FROM annotator_links WHERE token_sha256 = ?').pluck().get(token)).toBe(0); // only its digest
    } finally {
      g.db.close();
    }
    const none = await cli(['study', 'link', '99', '--annotator', 'ada', '--gallery', gallery]);
    expect([none.code, none.stderr]).toEqual([2, expect.stringMatching(/there is no study 99/)]);
  });

  it('--fit pad translates the whole 30×40 image and returns it in its own aspect (48×64); the default crop is square', async () => {
    const padded = await translateA(['--fit', 'pad', '--no-discriminator'], join(dir, 'fit-pad'));
    expect(padded.code).toBe(0);
    const rec = JSON.parse(padded.stdout.trim().split('\n')[0]!);
    expect(await sharp(rec.output).metadata()).toMatchObject({ width: 48, height: 64 });
    expect((await readPngText(rec.output))['parameters']).toMatch(/Fit: pad/);
    expect(rec.params.fit).toBe('pad');
    const cropped = await translateA(['--no-discriminator'], join(dir, 'fit-crop'));
    const crec = JSON.parse(cropped.stdout.trim().split('\n')[0]!);
    expect(await sharp(crec.output).metadata()).toMatchObject({ width: 64, height: 64 });
    expect((await readPngText(crec.output))['parameters']).not.toMatch(/Fit:/);
    // --output-size source: the source's own size, the resize named in the parameters
    const full = await translateA(['--fit', 'pad', '--output-size', 'source', '--no-discriminator'], join(dir, 'fit-full'));
    const frec = JSON.parse(full.stdout.trim().split('\n')[0]!);
    expect(await sharp(frec.output).metadata()).toMatchObject({ width: 30, height: 40 });
    expect((await readPngText(frec.output))['parameters']).toMatch(/Resize: Lanczos3 to the source size/);
    const cropFull = await translateA(['--output-size', 'source', '--no-discriminator'], join(dir, 'fit-crop-full'));
    const cfrec = JSON.parse(cropFull.stdout.trim().split('\n')[0]!);
    expect(await sharp(cfrec.output).metadata()).toMatchObject({ width: 30, height: 30 }); // the part the crop kept
    const bad = await translateA(['--fit', 'squash'], join(dir, 'fit-bad'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--fit.*squash.*crop, pad, stretch/s);
  });
});
