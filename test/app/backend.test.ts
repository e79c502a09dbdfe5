import { readFileSync } from 'node:fs';
import { cp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { StudioBackend } from '../../src/main/backend/backend.js';
import { ENGINE_VERSION } from '../../src/shared/version.js';
import { tempDir } from '../helpers/tmp.js';

describe('the back end validates every request (no Electron needed)', async () => {
  const backend = await StudioBackend.create({ mode: 'server', dataDir: await tempDir() });

  it('answers getInfo', async () => {
    expect(await backend.dispatch('getInfo', [])).toMatchObject({ engineVersion: ENGINE_VERSION, mode: 'server' });
  });

  it('rejects unknown methods, extra arguments, wrong types, out-of-range values and path tricks', async () => {
    await expect(backend.dispatch('constructor', [])).rejects.toThrow(/unknown method "constructor"/);
    await expect(backend.dispatch('__proto__', [])).rejects.toThrow(/unknown method/);
    await expect(backend.dispatch('getInfo', ['surprise'])).rejects.toThrow(/invalid request to getInfo/);
    await expect(backend.dispatch('translate', [{ sources: ['../../etc/passwd'], params: {} }])).rejects.toThrow(
      /Sources \(item 1\): not a source id \(you gave "..\/..\/etc\/passwd"\)/,
    );
    await expect(backend.dispatch('translate', [{ sources: ['0123456789abcdef'], params: { t0: 3 } }])).rejects.toThrow(
      /t0 must be in \(0, 1\]/,
    );
    await expect(backend.dispatch('translate', [{ sources: ['0123456789abcdef'], params: { sampler: 'rm -rf' } }])).rejects.toThrow(
      /^Sampler: choose one of euler, heun, ddim, ddpm, dpm\+\+2m, dpm\+\+3m, unipc, euler-a, dpm\+\+2m-sde \(you gave "rm -rf"\)/,
    );
    await expect(
      backend.dispatch('trainDiscriminator', [{ sources: [], targets: [], t0Range: [0.3, 0.6], steps: 1, name: '../evil' }]),
    ).rejects.toThrow(/name/);
    await expect(
      backend.dispatch('trainDiscriminator', [
        {
          sources: ['0123456789abcdef', '0123456789abcdee'],
          targets: ['0123456789abcdef', '0123456789abcdee'],
          t0Range: [0.7, 0.3],
          steps: 1,
          name: 'x',
        },
      ]),
    ).rejects.toThrow(/t0 range must be low, high with low ≤ high/);
    // a model file named ".." (or ".hidden") is refused in words, before anything is written; no server path in the answer
    const bad = backend.dispatch('importModel', [
      {
        kind: 'score',
        files: [
          { name: 'manifest.json', data: new TextEncoder().encode('{}') },
          { name: '..', data: new Uint8Array([1]) },
        ],
      },
    ]);
    await expect(bad).rejects.toThrow(/a file name that does not start with a dot/);
    await expect(bad).rejects.not.toThrow(/\/tmp|\/home|\/root/);
    expect(backend.resolveFile('image', '../../../etc/passwd')).toBeNull();
    expect(backend.resolveFile('secret', '0123456789abcdef')).toBeNull();
  });

  it('refuses bad fields in words, naming the field as the studio shows it and what was given', async () => {
    const src = ['0123456789abcdef'];
    const cases: [string, unknown[], RegExp][] = [
      ['gallerySearch', [{ t0Min: null }], /^smallest t0: enter a number \(refused/],
      ['translate', [{ sources: src, params: { steps: 5000 } }], /^Steps: at most 1000 \(you gave 5000\)/],
      ['translate', [{ sources: src, params: { seed: -1 } }], /^Seed: at least 0 \(you gave -1\)/],
      ['translate', [{ sources: src, params: { steps: null } }], /^Steps: enter a number/],
      ['sweep', [{ sources: src, t0: [0.5], weights: ['one', 'two'] }], /DG weights \(item 1\): expected a number \(you gave "one"\)/],
    ];
    for (const [method, args, message] of cases) {
      const e = await backend.dispatch(method, args).catch((x: Error) => x);
      expect([method, (e as Error).message]).toEqual([method, expect.stringMatching(message)]);
      expect((e as Error).message).not.toMatch(/Invalid input|received null|0\.t0Min/);
    }
  });

  it('takes images as bytes into its inbox and refuses what is not an image, by name', async () => {
    const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#123456' } })
      .png()
      .toBuffer();
    const r = (await backend.dispatch('addSources', [
      {
        files: [
          { name: 'ok.png', data: new Uint8Array(png) },
          { name: 'notes.png', data: new TextEncoder().encode('hello') },
        ],
      },
    ])) as {
      sources: { id: string }[];
      errors: { message: string }[];
    };
    expect(r.sources).toHaveLength(1);
    expect(r.errors[0]!.message).toMatch(/cannot use "notes.png": not an image/);
    expect(backend.resolveFile('source', r.sources[0]!.id)).toMatch(/inbox/);
  });

  it('says why an upload is refused in words: too many pixels, or truncated — not "not an image" for both', async () => {
    const big = await sharp({ create: { width: 9000, height: 8000, channels: 3, background: '#808080' } })
      .png({ compressionLevel: 9 })
      .toBuffer(); // 72 M pixels, a small file
    const jpg = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } })
      .jpeg()
      .toBuffer();
    const r = (await backend.dispatch('addSources', [
      {
        files: [
          { name: 'huge.png', data: new Uint8Array(big) },
          { name: 'cut.jpg', data: new Uint8Array(jpg.subarray(0, 40)) },
        ],
      },
    ])) as { sources: unknown[]; errors: { name: string; message: string }[] };
    expect(r.sources).toHaveLength(0);
    expect(r.errors.find((e) => e.name === 'huge.png')!.message).toMatch(/cannot use "huge.png": the image is larger than 67108864 pixels/);
    expect(r.errors.find((e) => e.name === 'cut.jpg')!.message).toMatch(
      /cannot use "cut.jpg": (the file is truncated or corrupt|not an image)/,
    );
    for (const e of r.errors) expect(e.message).not.toMatch(/VipsJpeg|vips|libjpeg/i); // no decoder jargon
  });

  it('adds the bundled samples like picked files, so a first run needs none', async () => {
    const r = (await backend.dispatch('addSamples', [])) as { sources: { id: string; name: string }[]; errors: unknown[] };
    expect(r.errors).toEqual([]);
    expect(r.sources.map((s) => s.name)).toContain('twemoji-1f427-penguin.png');
    expect(r.sources.length).toBeGreaterThanOrEqual(8);
    for (const s of r.sources) expect(backend.resolveFile('source', s.id)).toMatch(/inbox/);
    await expect(backend.dispatch('addSamples', ['extra'])).rejects.toThrow();
  });

  it('refuses a DG weight when no discriminator exists, instead of silently translating without guidance', async () => {
    const resources = await tempDir();
    await cp(join(import.meta.dirname, '..', 'fixtures', 'toy-resources'), resources, { recursive: true, dereference: true });
    const defaults = join(resources, 'models', 'defaults.json');
    await writeFile(defaults, JSON.stringify({ ...JSON.parse(readFileSync(defaults, 'utf8')), discriminator: null }));
    await rm(join(resources, 'models', 'toy-gaussian-64-dg'), { recursive: true });
    const before = process.env['DG_STUDIO_RESOURCES'];
    process.env['DG_STUDIO_RESOURCES'] = resources;
    try {
      const lonely = await StudioBackend.create({ mode: 'server', dataDir: await tempDir() });
      const { sources } = (await lonely.dispatch('addSamples', [])) as { sources: { id: string }[] };
      await expect(lonely.dispatch('translate', [{ sources: [sources[0]!.id], params: { dgWeight: 1 } }])).rejects.toThrow(
        /a DG weight above 0 needs a discriminator, and none is bundled/,
      );
      expect(await lonely.dispatch('translate', [{ sources: [sources[0]!.id], params: { dgWeight: 0, steps: 2 } }])).toHaveProperty(
        'jobId',
      );
      await lonely.close();
    } finally {
      if (before === undefined) delete process.env['DG_STUDIO_RESOURCES'];
      else process.env['DG_STUDIO_RESOURCES'] = before;
    }
  });

  it('a bare .onnx: proposeManifest returns the checked proposal (no scratch paths), which then imports', async () => {
    const fixture = (p: string) => new Uint8Array(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'inspect', p)));
    const r = (await backend.dispatch('proposeManifest', [{ file: { name: 'disc.onnx', data: fixture('disc-torch/model.onnx') } }])) as {
      kind: string;
      problem: string | null;
      manifest: string;
      guesses: string[];
    };
    expect(r).toMatchObject({ kind: 'discriminator', problem: null });
    expect(JSON.parse(r.manifest)).toMatchObject({ onnx: 'disc.onnx', io: { t: 'timestep' } });
    const entry = await backend.dispatch('importModel', [
      {
        kind: 'discriminator',
        files: [
          { name: 'disc.onnx', data: fixture('disc-torch/model.onnx') },
          { name: 'manifest.json', data: new TextEncoder().encode(r.manifest.replace('"disc"', '"torch disc"')) },
        ],
      },
    ]);
    expect(entry).toMatchObject({ kind: 'discriminator', bundled: false });
    await expect(backend.dispatch('proposeManifest', [{ file: { name: 'broken.onnx', data: fixture('broken.onnx') } }])).rejects.toThrow(
      /^cannot inspect "broken\.onnx": cannot read "broken\.onnx": not a valid ONNX file/,
    );
    await expect(backend.dispatch('proposeManifest', [{ file: { name: '../x.onnx', data: fixture('broken.onnx') } }])).rejects.toThrow(
      /an \.onnx file name, not a path/,
    );
  });

  it('an imported classifier is listed with its classes; a CG weight without one is refused in words', async () => {
    const fixture = (p: string) => new Uint8Array(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'inspect', p)));
    const file = { name: 'cls.onnx', data: fixture('classifier/model.onnx') };
    const r = (await backend.dispatch('proposeManifest', [{ file }])) as { kind: string; manifest: string };
    expect(r.kind).toBe('classifier');
    const manifest = { ...JSON.parse(r.manifest), name: 'animals', classes: ['cat', 'dog', 'fox', 'owl'] };
    await backend.dispatch('importModel', [
      { kind: 'classifier', files: [file, { name: 'manifest.json', data: new TextEncoder().encode(JSON.stringify(manifest)) }] },
    ]);
    const models = (await backend.dispatch('listModels', [])) as { kind: string; name: string; classes?: string[] }[];
    expect(models.find((m) => m.kind === 'classifier')).toMatchObject({ name: 'animals', classes: ['cat', 'dog', 'fox', 'owl'] });
    const { sources } = (await backend.dispatch('addSamples', [])) as { sources: { id: string }[] };
    await expect(
      backend.dispatch('translate', [{ sources: [sources[0]!.id], params: { cgWeight: 1, classLabel: 0 }, classifier: 'imported:nope' }]),
    ).rejects.toThrow(/no classifier "imported:nope"; pick one from the list/);
    await expect(backend.dispatch('translate', [{ sources: [sources[0]!.id], params: { cgWeight: 1, classLabel: 0 } }])).rejects.toThrow(
      /a CG weight above 0 needs a classifier/,
    );
  });

  it("lists a score model's valid time range, so the studio's t0 slider stops where the model was trained", async () => {
    const toy = join(import.meta.dirname, '..', 'fixtures', 'toy-resources', 'models', 'toy-gaussian-64');
    const manifest = { ...JSON.parse(readFileSync(join(toy, 'manifest.json'), 'utf8')), name: 'capped toy', validTimeRange: [0, 0.8] };
    await backend.dispatch('importModel', [
      {
        kind: 'score',
        files: [
          { name: 'model.onnx', data: new Uint8Array(readFileSync(join(toy, 'model.onnx'))) },
          { name: 'manifest.json', data: new TextEncoder().encode(JSON.stringify(manifest)) },
        ],
      },
    ]);
    const models = (await backend.dispatch('listModels', [])) as {
      id: string;
      name: string;
      validTimeRange?: number[];
      dataShape?: number[];
    }[];
    const capped = models.find((m) => m.name === 'capped toy')!;
    expect(capped).toMatchObject({ validTimeRange: [0, 0.8], dataShape: [3, 64, 64] });
    // the bundled model imported again (same network file and settings, another name) is refused, naming the one listed
    const bundledManifest = { ...JSON.parse(readFileSync(join(toy, 'manifest.json'), 'utf8')), name: 'my copy' };
    await expect(
      backend.dispatch('importModel', [
        {
          kind: 'score',
          files: [
            { name: 'model.onnx', data: new Uint8Array(readFileSync(join(toy, 'model.onnx'))) },
            { name: 'manifest.json', data: new TextEncoder().encode(JSON.stringify(bundledManifest)) },
          ],
        },
      ]),
    ).rejects.toThrow(/this model is already in the list as ".*" \(the same network file and settings\)/);
    // the wrong kind chosen: said in words (not the score schema's complaints about a discriminator manifest)
    await expect(
      backend.dispatch('importModel', [
        {
          kind: 'discriminator',
          files: [
            { name: 'model.onnx', data: new Uint8Array(readFileSync(join(toy, 'model.onnx'))) },
            { name: 'other.json', data: new TextEncoder().encode(JSON.stringify({ ...bundledManifest, name: 'wrong kind' })) },
          ],
        },
      ]),
    ).rejects.toThrow(/^"other\.json" is a score model manifest, not a discriminator one: choose "score model" as the kind/);
    // a model the user added can be deleted; a bundled one cannot
    await expect(backend.dispatch('deleteModel', ['bundled:score'])).rejects.toThrow(/is bundled with DG Studio and cannot be deleted/);
    expect(await backend.dispatch('deleteModel', [capped.id])).toBe(true);
    const after = (await backend.dispatch('listModels', [])) as { id: string }[];
    expect(after.some((m) => m.id === capped.id)).toBe(false);
    await expect(backend.dispatch('deleteModel', [capped.id])).rejects.toThrow(/no model "imported:capped-toy"/);
  });

  it('the engine version matches package.json', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8'));
    expect(ENGINE_VERSION).toBe(pkg.version);
  });
});
