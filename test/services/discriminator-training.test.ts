import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { loadDiscriminator } from '../../src/main/engine/models/discriminator.js';
import { bundledDefaults } from '../../src/main/services/resources.js';
import { parseModel } from '../../src/main/engine/onnx/ir.js';
import { exportDiscriminator } from '../../src/main/services/discriminator-package.js';
import { trainDiscriminator } from '../../src/main/services/discriminator-training.js';
import { fakeT0, isValidation, VALIDATION_SALT } from '../../src/main/services/training-images.js';
import { loadDiscriminatorCheckpoint } from '../../src/main/services/discriminator-checkpoint.js';
import { tempDir } from '../helpers/tmp.js';

describe('train-discriminator service', async () => {
  const dir = await tempDir();
  const [src, tgt] = [join(dir, 'source'), join(dir, 'target')];
  await mkdir(src);
  await mkdir(tgt);
  for (let i = 0; i < 6; i++) {
    await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 30 * i, g: 90, b: 220 } } })
      .png()
      .toFile(join(src, `s${i}.png`));
    await sharp({ create: { width: 64, height: 64, channels: 4, background: { r: 240, g: 100 + 20 * i, b: 30, alpha: 1 } } })
      .png()
      .toFile(join(tgt, `t${i}.png`));
  }
  const base = {
    modelManifest: bundledDefaults().scoreModel,
    sources: [src],
    targets: [tgt],
    t0Range: [0.3, 0.5] as [number, number],
    batchSize: 8,
    channels: [8, 16, 16, 16],
    translationSteps: 3,
    evalEvery: 10,
  };

  it('splits by file name, the same way every time', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `emoji-${i}.png`);
    const val = names.filter((n) => isValidation(n, 0.2)).length;
    expect(val).toBeGreaterThan(150);
    expect(val).toBeLessThan(250);
    expect(isValidation('/a/b/x.png', 0.2)).toBe(isValidation('/c/x.png', 0.2));
    // the trainer's own split is salted: on a folder that is the unsalted 80 % side, it still holds out ~10 %
    const trainSide = names.filter((n) => !isValidation(n, 0.2));
    const held = trainSide.filter((n) => isValidation(n, 0.1, VALIDATION_SALT)).length;
    expect(held).toBeGreaterThan(0.06 * trainSide.length);
    expect(held).toBeLessThan(0.14 * trainSide.length);
  });

  it('the fakes cover the t0 range evenly, one translation per source too (not all at its middle)', () => {
    for (const k of [1, 3]) {
      const t0s = Array.from({ length: 200 }, (_, si) => Array.from({ length: k }, (_, ti) => fakeT0([0.2, 0.6], k, si, ti))).flat();
      expect(Math.min(...t0s)).toBeGreaterThanOrEqual(0.2);
      expect(Math.max(...t0s)).toBeLessThan(0.6);
      // ten equal bins of [0.2, 0.6]: each holds a tenth of the fakes, within 2 % of them
      const bins = Array.from({ length: 10 }, (_, b) => t0s.filter((t) => Math.floor((t - 0.2) / 0.04 + 1e-9) === b).length);
      for (const n of bins) expect(Math.abs(n / t0s.length - 0.1)).toBeLessThan(0.02);
      // a source's own translations are spread too
      if (k === 3) expect(Math.max(...t0s.slice(0, 3)) - Math.min(...t0s.slice(0, 3))).toBeGreaterThan(0.1);
    }
    expect(fakeT0([0.2, 0.6], 1, 7, 0)).toBe(fakeT0([0.2, 0.6], 1, 7, 0));
  });

  it('writes a package that loads and guides, and resumes from its checkpoint', async () => {
    const out = join(dir, 'pkg');
    const stages: string[] = [];
    const r = await trainDiscriminator({ ...base, outDir: out, steps: 12, timeSampling: 'uniform' }, { onStage: (m) => stages.push(m) });
    expect(r.steps).toBe(12);
    expect(stages.some((s) => /training a .*M-parameter discriminator/.test(s))).toBe(true);
    const manifest = JSON.parse(await readFile(r.manifestPath, 'utf8'));
    expect(manifest.training.data.fakeTrain).toBeGreaterThan(manifest.training.data.realTrain - 2); // sources + their translations
    // the record names how τ was drawn and the optimiser's schedule, not only the network
    expect(manifest.training).toMatchObject({ timeSampling: 'uniform', lr: 2e-3, lrSchedule: 'cosine' });
    const disc = await loadDiscriminator(r.manifestPath, { dataShape: [3, 64, 64], valueRange: [-1, 1] });
    const x = { data: new Float32Array(2 * 3 * 64 * 64).fill(0.2), shape: [2, 3, 64, 64] };
    const { value, grad } = await disc.critic.evaluate(x, Float64Array.from([0.1, 0.4]));
    expect(value).toHaveLength(2);
    expect(grad.data.some((v) => v !== 0)).toBe(true);
    await disc.dispose();
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(true);
    const resumed = await trainDiscriminator({ ...base, outDir: out, steps: 16, resume: true }, { onStage: (m) => stages.push(m) });
    expect(stages).toContain('resumed from step 12');
    expect(resumed.steps).toBe(16);
  }, 120_000);

  it("caches the fakes by the model's file and its σ ladder: a manifest's new ladder floor makes new fakes", async () => {
    const out = join(dir, 'ladder');
    const cached = async () => (await readdir(join(out, 'cache'))).filter((f) => f.endsWith('.f32')).sort();
    await trainDiscriminator({ ...base, outDir: out, steps: 2 });
    const first = await cached();
    expect(first.length).toBeGreaterThan(0);
    await trainDiscriminator({ ...base, outDir: out, steps: 2 });
    expect(await cached()).toEqual(first); // the same model and ladder: every fake reused
    // the same ONNX file, its manifest now ending the ladder higher (dg-math §8)
    const floored = join(dir, 'floored-model');
    await cp(dirname(base.modelManifest), floored, { recursive: true });
    const m = JSON.parse(await readFile(join(floored, 'manifest.json'), 'utf8'));
    await writeFile(join(floored, 'manifest.json'), JSON.stringify({ ...m, recommendedSigmaMin: 0.2 }));
    await trainDiscriminator({ ...base, modelManifest: join(floored, 'manifest.json'), outDir: out, steps: 2 });
    const after = await cached();
    expect(after).toHaveLength(2 * first.length);
    expect(after).toEqual(expect.arrayContaining(first));
  }, 120_000);

  it('a run of the old checkpoint format (checkpoint/state.json + state.bin) resumes exactly, and its next save is safetensors', async () => {
    const run = join(dir, 'old-format');
    await trainDiscriminator({ ...base, outDir: run, steps: 5, translationsPerSource: 0 });
    const ck = (await loadDiscriminatorCheckpoint(run))!;
    // rewrite the run as an earlier DG Studio left it: the old layout, no safetensors file
    const arrays = [
      ...Object.entries(ck.params).map(([k, v]) => [`p:${k}`, v] as const),
      ...Object.entries(ck.adam.m).map(([k, v]) => [`m:${k}`, v] as const),
      ...Object.entries(ck.adam.v).map(([k, v]) => [`v:${k}`, v] as const),
    ];
    const bin = new Float32Array(arrays.reduce((n, [, v]) => n + v.length, 0));
    const index: Record<string, [number, number]> = {};
    let off = 0;
    for (const [k, v] of arrays) [index[k], off] = [[off, v.length], (bin.set(v, off), off + v.length)];
    await mkdir(join(run, 'checkpoint'));
    await writeFile(join(run, 'checkpoint', 'state.bin'), new Uint8Array(bin.buffer));
    await writeFile(join(run, 'checkpoint', 'state.json'), JSON.stringify({ step: ck.step, adamStep: ck.adam.step, index }));
    await rm(join(run, 'checkpoint.safetensors'));
    const old = (await loadDiscriminatorCheckpoint(run))!;
    expect(old.step).toBe(5);
    expect(old.adam.step).toBe(ck.adam.step);
    for (const [k, v] of Object.entries(ck.params)) expect([k, [...old.params[k]!]]).toEqual([k, [...v]]);
    for (const [k, v] of Object.entries(ck.adam.v)) expect([k, [...old.adam.v[k]!]]).toEqual([k, [...v]]);
    const stages: string[] = [];
    await trainDiscriminator(
      { ...base, outDir: run, steps: 7, translationsPerSource: 0, resume: true },
      { onStage: (m) => stages.push(m) },
    );
    expect(stages).toContain('resumed from step 5');
    expect((await loadDiscriminatorCheckpoint(run))!.step).toBe(7); // read from the new checkpoint.safetensors
    expect(existsSync(join(run, 'checkpoint', 'state.json'))).toBe(true); // the old files are left as they were
  }, 120_000);

  it("--init starts from an earlier run's weights (fresh step and optimizer) and refuses another architecture", async () => {
    const first = await trainDiscriminator({ ...base, outDir: join(dir, 'pre'), steps: 6, translationsPerSource: 0 });
    const stages: string[] = [];
    const warm = await trainDiscriminator(
      { ...base, outDir: join(dir, 'warm'), steps: 0, init: join(dir, 'pre') },
      { onStage: (m) => stages.push(m) },
    );
    expect(stages).toContain(`initialized from ${join(dir, 'pre')} (its step 6)`);
    expect(warm.steps).toBe(0);
    const logits = async (manifest: string) => {
      const d = await loadDiscriminator(manifest, { dataShape: [3, 64, 64], valueRange: [-1, 1] });
      const x = { data: Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.sin(i)), shape: [2, 3, 64, 64] };
      const { value } = await d.critic.evaluate(x, Float64Array.from([0.05, 0.3]));
      await d.dispose();
      return [...value];
    };
    expect(await logits(warm.manifestPath)).toEqual(await logits(first.manifestPath));
    expect(JSON.parse(await readFile(warm.manifestPath, 'utf8')).training.initFrom).toEqual({ folder: '../pre', step: 6 });
    // a run folder exported to a package (what tools/pretrained/twemoji-vs-noto-disc ships): the same network, provenance recorded
    const exported = await exportDiscriminator(join(dir, 'pre'), join(dir, 'exported'));
    expect(exported.step).toBe(6);
    expect(await logits(exported.manifestPath)).toEqual(await logits(first.manifestPath));
    expect(JSON.parse(await readFile(exported.manifestPath, 'utf8')).training.exportedFrom).toMatchObject({ folder: '../pre', step: 6 });
    await expect(exportDiscriminator(join(dir, 'nowhere'), join(dir, 'x'))).rejects.toThrow(/nowhere" holds no training record/);
    await expect(
      trainDiscriminator({ ...base, channels: [8, 16, 16, 32], outDir: join(dir, 'other'), steps: 1, init: join(dir, 'pre') }),
    ).rejects.toThrow(/--init ".*pre": checkpoint does not match this architecture \(parameter ".*"\)/);
    await expect(trainDiscriminator({ ...base, outDir: join(dir, 'none'), steps: 1, init: join(dir, 'nowhere') })).rejects.toThrow(
      /--init ".*nowhere" holds no checkpoint/,
    );
  }, 120_000);

  it("a score model's own U-Net encoder as a time-conditioned frozen extractor: trains the head, packages, guides", async () => {
    const fixture = join(import.meta.dirname, '..', 'fixtures', 'torch-unet-tiny', 'model.onnx');
    const unet = parseModel(await readFile(fixture), 'unet');
    const mid = unet.graph.nodes.find((n) => n.name === '/Concat_1')!.inputs[0]!;
    const r = await trainDiscriminator({
      ...base,
      outDir: join(dir, 'unet-features'),
      steps: 4,
      frozenFeatures: { onnx: fixture, tensor: mid, time: { name: 't', encoding: { kind: 'ddpm-step', steps: 1000 } } },
    });
    const manifest = JSON.parse(await readFile(r.manifestPath, 'utf8'));
    expect(manifest.training.architecture.timeInput).toEqual({ name: 't', encoding: { kind: 'ddpm-step', steps: 1000 } });
    const disc = await loadDiscriminator(r.manifestPath, { dataShape: [3, 64, 64], valueRange: [-1, 1] });
    const x = { data: Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i / 9)), shape: [1, 3, 64, 64] };
    const { value, grad } = await disc.critic.evaluate(x, Float64Array.from([0.3]));
    expect(Number.isFinite(value[0]!)).toBe(true);
    expect(grad.data.some((v) => v !== 0)).toBe(true);
    await disc.dispose();
  }, 120_000);

  it('--fakes adds translations made elsewhere to the fake side, split by file name like the rest', async () => {
    const fakes = join(dir, 'gpu-fakes');
    await mkdir(fakes, { recursive: true });
    for (let i = 0; i < 10; i++)
      await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 250, g: 10 * i, b: 10 } } })
        .png()
        .toFile(join(fakes, `s${i}.png`));
    const plain = await trainDiscriminator({ ...base, outDir: join(dir, 'no-extra'), steps: 1, translationsPerSource: 0 });
    const stages: string[] = [];
    const r = await trainDiscriminator(
      { ...base, outDir: join(dir, 'extra'), steps: 1, translationsPerSource: 0, extraFakes: [fakes] },
      { onStage: (m) => stages.push(m) },
    );
    // with the fakes given, no translations are made, and none are reported as being made
    expect(stages.filter((m) => /translations/.test(m))).toEqual([]);
    const data = async (x: { manifestPath: string }) => JSON.parse(await readFile(x.manifestPath, 'utf8')).training.data;
    const [da, db] = [await data(plain), await data(r)];
    expect(db.extraFakes).toBe(10);
    expect(db.fakeTrain + db.fakeVal).toBe(da.fakeTrain + da.fakeVal + 10);
  }, 120_000);

  it('--refine trains the next round on translations guided by the given discriminator, and packages both as one', async () => {
    const r1 = await trainDiscriminator({ ...base, outDir: join(dir, 'round1'), steps: 2 });
    const stages: string[] = [];
    const r2 = await trainDiscriminator(
      { ...base, outDir: join(dir, 'round2'), steps: 2, attentionAt: [], refine: { discriminator: join(dir, 'round1'), weight: 4 } },
      { onStage: (m) => stages.push(m) },
    );
    expect(stages.some((m) => /making DG-guided \(w 4\) SDEdit translations/.test(m))).toBe(true);
    const [m1, m2] = [JSON.parse(await readFile(r1.manifestPath, 'utf8')), JSON.parse(await readFile(r2.manifestPath, 'utf8'))];
    // round 1's fakes: the 6 sources and their translations; round 2's: only the guided translations
    expect(m1.training.data.fakeTrain + m1.training.data.fakeVal).toBe(12);
    const round = m2.refinements[0];
    expect(m2.refinements).toHaveLength(1);
    expect(round).toMatchObject({ onnx: 'round2.onnx', weight: 1 });
    expect(round.training.data.fakeTrain + round.training.data.fakeVal).toBe(6);
    expect(round.training.data.guidedBy).toEqual({ weight: 4 });
    // its own design: no attention (round 1 has it at 8)
    expect([m1.training.architecture.attentionAt, round.training.architecture.attentionAt]).toEqual([[8], []]);
    expect(m2.training).toEqual(m1.training); // round 1's record stays its own
    expect(m2.name).toBe(`${m1.name} + round 2`);
    // the guided fakes are cached apart from the unguided ones
    const [c1, c2] = [await readdir(join(dir, 'round1', 'cache')), await readdir(join(dir, 'round2', 'cache'))];
    expect(c2).toHaveLength(6);
    expect(c2.filter((f) => c1.includes(f))).toEqual([]);

    // the package's critic is round 1's log r plus round 2's
    await writeFile(
      join(dir, 'round2', 'only2.json'),
      JSON.stringify({ ...m2, onnx: 'round2.onnx', guidanceOnnx: undefined, refinements: undefined }),
    );
    const expect3 = { dataShape: [3, 64, 64], valueRange: [-1, 1] as [number, number] };
    const [both, first, second] = await Promise.all(
      [r2.manifestPath, r1.manifestPath, join(dir, 'round2', 'only2.json')].map((f) => loadDiscriminator(f, expect3)),
    );
    const x = { data: Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.sin(i) * 0.5), shape: [2, 3, 64, 64] };
    const tau = Float64Array.from([0.1, 0.4]);
    const [vb, v1, v2] = await Promise.all([both, first, second].map((d) => d!.critic.evaluate(x, tau)));
    for (let n = 0; n < 2; n++) expect(vb!.value[n]).toBeCloseTo(v1!.value[n]! + v2!.value[n]!, 4);
    for (let i = 0; i < 50; i++) expect(vb!.grad.data[i * 401]).toBeCloseTo(v1!.grad.data[i * 401]! + v2!.grad.data[i * 401]!, 5);
    await Promise.all([both, first, second].map((d) => d!.dispose()));

    // a third round appends, never overwrites; the refined package's own folder is refused
    const r3 = await trainDiscriminator({ ...base, outDir: join(dir, 'round3'), steps: 1, refine: { discriminator: r2.manifestPath } });
    const m3 = JSON.parse(await readFile(r3.manifestPath, 'utf8'));
    expect(m3.refinements.map((r: { onnx: string }) => r.onnx)).toEqual(['round2.onnx', 'round3.onnx']);
    expect(m3.name).toBe(`${m1.name} + round 3`);
    expect(m3.refinements[1].training.data.guidedBy).toEqual({ weight: m2.recommendedWeight ?? 1 });
    await expect(
      trainDiscriminator({ ...base, outDir: join(dir, 'round2'), steps: 1, refine: { discriminator: join(dir, 'round2') } }),
    ).rejects.toThrow(/is the folder of the discriminator it refines/);
    // a package whose own file is named as its next round's (only2.json: round2.onnx as round 1) is refused before
    // any translation is made, not after training
    const clash: string[] = [];
    await expect(
      trainDiscriminator(
        { ...base, outDir: join(dir, 'clash'), steps: 1, refine: { discriminator: join(dir, 'round2', 'only2.json') } },
        { onStage: (m) => clash.push(m) },
      ),
    ).rejects.toThrow(/only2\.json" already names a file "round2\.onnx", the next round's/);
    expect(clash.filter((m) => /translations/.test(m))).toEqual([]);
  }, 180_000);

  it('cancelling keeps what was learned: a checkpoint and a package marked as stopped', async () => {
    const out = join(dir, 'cancel');
    const ctrl = new AbortController();
    const r = await trainDiscriminator(
      { ...base, outDir: out, steps: 1000 },
      { onProgress: (p) => p.step >= 3 && ctrl.abort() },
      ctrl.signal,
    );
    expect(r.cancelled).toBe(true);
    expect(r.steps).toBeLessThan(1000);
    const manifest = JSON.parse(await readFile(r.manifestPath, 'utf8'));
    expect(manifest.training.cancelled).toBe(true);
  }, 120_000);

  it('class-conditional: one subfolder per class; the package records the classes and needs a label to guide', async () => {
    const [cs, ct] = [join(dir, 'csrc'), join(dir, 'ctgt')];
    for (const [root, colours] of [
      [cs, ['#2244cc', '#cc4422']],
      [ct, ['#cc4422', '#2244cc']],
    ] as const) {
      for (const [k, cls] of ['cats', 'dogs'].entries()) {
        await mkdir(join(root, cls), { recursive: true });
        for (let i = 0; i < 3; i++)
          await sharp({ create: { width: 64, height: 64, channels: 3, background: colours[k]! } })
            .png()
            .toFile(join(root, cls, `${cls}${i}.png`));
      }
    }
    const r = await trainDiscriminator({ ...base, sources: [cs], targets: [ct], outDir: join(dir, 'classes'), steps: 6, classes: true });
    const manifest = JSON.parse(await readFile(r.manifestPath, 'utf8'));
    expect(manifest.classes).toEqual(['cats', 'dogs']);
    await expect(loadDiscriminator(r.manifestPath)).rejects.toThrow(/class-conditional: give a class label/);
    const disc = await loadDiscriminator(r.manifestPath, undefined, {}, 1);
    const { value } = await disc.critic.evaluate({ data: new Float32Array(3 * 64 * 64), shape: [1, 3, 64, 64] }, Float64Array.from([0.2]));
    expect(Number.isFinite(value[0]!)).toBe(true);
    await disc.dispose();
    await expect(loadDiscriminator(r.manifestPath, undefined, {}, 5)).rejects.toThrow(/knows classes 0…1 \(cats, dogs\); got 5/);
  }, 120_000);
});
