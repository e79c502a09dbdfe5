/**
 * `inspect` proposals and the load-time manifest checks (issue 18), on files this project did not
 * build: PyTorch exports in test/fixtures/inspect (tools/make-inspect-fixtures.py) and
 * test/fixtures/torch-unet-tiny, plus the project's own toy export.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkClassifier } from '../../src/main/engine/models/classifier.js';
import { loadDiscriminator } from '../../src/main/engine/models/discriminator.js';
import { loadScoreModel } from '../../src/main/engine/models/score-model.js';
import { inspectOnnxFile } from '../../src/main/services/inspect-model.js';
import { inspectModel } from '../../src/main/engine/models/inspect.js';
import { GraphBuilder } from '../../src/main/engine/onnx/builder.js';
import { tempDir } from '../helpers/tmp.js';

const root = join(import.meta.dirname, '..', '..');
const fx = (p: string) => join(root, 'test', 'fixtures', p);
const run = promisify(execFile);
const cli = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', join(root, 'src/main/cli/index.ts'), ...args], { cwd: root }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

/** A fixture's ONNX copied into a fresh folder with `manifest` beside it; returns the manifest path. */
async function withManifest(dir: string, name: string, onnx: string, manifest: Record<string, unknown>): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  await copyFile(onnx, join(d, 'model.onnx'));
  await writeFile(join(d, 'manifest.json'), JSON.stringify({ onnx: 'model.onnx', name, ...manifest }));
  return join(d, 'manifest.json');
}

describe('inspect proposes a manifest that loads and runs', () => {
  it("the project's own toy export: float t, VP time on the linear VP SDE, as its shipped manifest says", async () => {
    const r = await inspectOnnxFile(join(root, 'test/fixtures/toy-resources/models/toy-gaussian-64/model.onnx'));
    expect(r.problem).toBeNull();
    expect(r.inspection.kind).toBe('score');
    const shipped = JSON.parse(await readFile(join(root, 'test/fixtures/toy-resources/models/toy-gaussian-64/manifest.json'), 'utf8'));
    expect(r.inspection.manifest).toMatchObject({
      schedule: { kind: shipped.schedule.kind },
      timeInput: { kind: 't' },
      dataShape: [3, 64, 64],
    });
  });

  it("the project's own discriminator export (tools/pretrained/twemoji-vs-noto-disc): the manifest it ships with", async () => {
    const r = await inspectOnnxFile(join(root, 'tools/pretrained/twemoji-vs-noto-disc/forward.onnx'));
    expect(r.problem).toBeNull();
    const shipped = JSON.parse(await readFile(join(root, 'tools/pretrained/twemoji-vs-noto-disc/manifest.json'), 'utf8'));
    expect(r.inspection.manifest).toMatchObject({
      kind: 'onnx',
      io: shipped.io,
      output: shipped.output,
      timeInput: shipped.timeInput,
      timeDType: shipped.timeDType,
      coordinates: shipped.coordinates,
      dataShape: shipped.dataShape,
    });
  });

  it('a PyTorch U-Net export (dynamic batch, int64 time): a DDPM step over the linear schedule', async () => {
    const r = await inspectOnnxFile(fx('torch-unet-tiny/model.onnx'));
    expect(r.problem).toBeNull();
    expect(r.inspection.manifest).toMatchObject({
      format: 'dg-studio/score-model@1',
      io: { x: 'x', t: 't', output: 'out' },
      timeInput: { kind: 'step' },
      timeDType: 'int64',
      timeShape: 'batch',
      prediction: 'eps',
      schedule: { kind: 'ddpm-linear', steps: 1000 },
    });
    expect(r.inspection.inputs.map((i) => i.role)).toEqual(['image', 'time']);
  });

  it('a diffusers-style export (sample, float scalar timestep, out_sample): step as a float, one time per call', async () => {
    const r = await inspectOnnxFile(fx('inspect/unet-diffusers/model.onnx'));
    expect(r.problem).toBeNull();
    expect(r.inspection.manifest).toMatchObject({
      io: { x: 'sample', t: 'timestep', output: 'out_sample' },
      timeDType: 'float32',
      timeShape: 'scalar',
      timeInput: { kind: 'step' },
      dataShape: [3, 16, 16],
    });
    expect(r.inspection.guesses.join('\n')).toMatch(/diffusers' convention/);
  });

  it('a class-conditional U-Net: the class input and the class count from its embedding table', async () => {
    const r = await inspectOnnxFile(fx('inspect/unet-class/model.onnx'));
    expect(r.problem).toBeNull();
    expect(r.inspection.manifest).toMatchObject({ io: { classLabel: 'class_labels' }, classes: { count: 5, encoding: 'index' } });
    expect(r.inspection.inputs.map((i) => i.role)).toEqual(['image', 'time', 'class']);
  });

  it('a PyTorch discriminator (x, int64 timestep → logit; InstanceNorm, einsum attention, h[:, 0]): its gradient matches finite differences', async () => {
    const dir = await tempDir();
    const r = await inspectOnnxFile(fx('inspect/disc-torch/model.onnx'));
    expect(r.problem).toBeNull();
    expect(r.inspection.kind).toBe('discriminator');
    expect(r.inspection.manifest).toMatchObject({
      kind: 'onnx',
      io: { t: 'timestep', output: 'logit' },
      output: 'logit',
      timeInput: { kind: 'step', steps: 1000 },
    });
    const manifest = await withManifest(dir, 'disc', fx('inspect/disc-torch/model.onnx'), r.inspection.manifest);
    const d = await loadDiscriminator(manifest);
    const x = { data: Float32Array.from({ length: 2 * 768 }, (_, i) => Math.sin(i * 0.37) * 0.8), shape: [2, 3, 16, 16] };
    const tau = Float64Array.from([0.25, 0.6]);
    const { value, grad } = await d.critic.evaluate(x, tau);
    const h = 1e-2;
    for (const i of [5, 300, 1000, 1500]) {
      const plus = { data: Float32Array.from(x.data), shape: x.shape };
      const minus = { data: Float32Array.from(x.data), shape: x.shape };
      plus.data[i]! += h;
      minus.data[i]! -= h;
      const item = Math.floor(i / 768);
      const fd = ((await d.critic.evaluate(plus, tau)).value[item]! - (await d.critic.evaluate(minus, tau)).value[item]!) / (2 * h);
      expect(Math.abs(fd - grad.data[i]!)).toBeLessThan(2e-3 + 0.02 * Math.abs(fd));
    }
    expect(value.every(Number.isFinite)).toBe(true);
    await d.dispose();
  });

  it('a noisy classifier (x, float t → logits [N, 4]): four classes, checked by a dry run', async () => {
    const dir = await tempDir();
    const r = await inspectOnnxFile(fx('inspect/classifier/model.onnx'));
    expect(r.problem).toBeNull();
    expect(r.inspection.manifest).toMatchObject({
      format: 'dg-studio/classifier@1',
      classes: ['class-0', 'class-1', 'class-2', 'class-3'],
    });
    const bad = await withManifest(dir, 'cls3', fx('inspect/classifier/model.onnx'), {
      ...r.inspection.manifest,
      classes: ['a', 'b', 'c'],
    });
    await expect(checkClassifier(bad)).rejects.toThrow(/"classes" names 3 classes, but output "logits" has 4 columns/);
    const wrongT = await withManifest(dir, 'clst', fx('inspect/classifier/model.onnx'), {
      ...r.inspection.manifest,
      io: { x: 'x', t: 'time', output: 'logits' },
    });
    await expect(checkClassifier(wrongT)).rejects.toThrow(
      /io\.t is "time", but the ONNX file has no input of that name; its inputs are "x", "t"/,
    );
    const noClasses = await withManifest(dir, 'cls0', fx('inspect/classifier/model.onnx'), { ...r.inspection.manifest, classes: ['only'] });
    await expect(checkClassifier(noClasses)).rejects.toThrow(/classes: at least 2 needed/);
  });

  it('an image input whose size the file leaves open needs --data-shape, and takes it', () => {
    const g = new GraphBuilder('open-size');
    const x = g.input('sample', 'float32', ['N', 3, 'H', 'W']);
    g.input('t', 'int64', ['N']);
    g.identity(g.op('Neg', [x]), 'out');
    g.output('out', 'float32', ['N', 3, 'H', 'W']);
    const model = g.build();
    expect(() => inspectModel(model, { onnxName: 'm.onnx' })).toThrow(
      /size of "sample" is not fixed in the file \(\[N, 3, H, W\]\); give one item's shape with --data-shape/,
    );
    expect(inspectModel(model, { onnxName: 'm.onnx', dataShape: [3, 32, 32] }).manifest).toMatchObject({
      dataShape: [3, 32, 32],
      io: { x: 'sample' },
    });
    expect(() => inspectModel(model, { onnxName: 'm.onnx', dataShape: [32, 32] })).toThrow(
      /--data-shape has 2 dims; "sample" has 3 after the batch/,
    );
  });

  it('--kind that the outputs contradict, and a broken file, are errors naming the file', async () => {
    await expect(inspectOnnxFile(fx('inspect/classifier/model.onnx'), { kind: 'score' })).rejects.toThrow(
      /classifier\/model\.onnx": asked for a score but no float output has the image's shape/,
    );
    await expect(inspectOnnxFile(fx('inspect/broken.onnx'))).rejects.toThrow(/cannot read ".*broken\.onnx": not a valid ONNX file/);
    await expect(inspectOnnxFile(fx('inspect/missing.onnx'))).rejects.toThrow(/missing\.onnx": file not found/);
  });
});

describe('manifest mistakes are reported at load, naming the field, what the file has and the fix', async () => {
  const dir = await tempDir();
  const unet = fx('torch-unet-tiny/model.onnx');
  const good = JSON.parse(await readFile(fx('torch-unet-tiny/manifest.json'), 'utf8')) as Record<string, unknown>;
  const score = (name: string, patch: Record<string, unknown>, onnx = unet) => withManifest(dir, name, onnx, { ...good, ...patch });

  it.each([
    [
      'io.x',
      { io: { x: 'image', t: 't', output: 'out' } },
      /io\.x is "image", but the ONNX file has no input of that name; its inputs are "x", "t" — set io\.x/,
    ],
    ['io.t', { io: { x: 'x', t: 'timestep', output: 'out' } }, /io\.t is "timestep", .*its inputs are "x", "t"/],
    ['io.output', { io: { x: 'x', t: 't', output: 'eps' } }, /io\.output is "eps", .*its outputs are "out"/],
    ['dataShape', { dataShape: [3, 32, 32] }, /"x" has shape \[N, 3, 64, 64\], but the manifest's dataShape is \[3, 32, 32\]/],
    [
      'timeInput vs schedule',
      { timeInput: { kind: 'step' }, schedule: { kind: 'lvp' } },
      /timeInput: a "step" time input needs a ddpm-\* schedule/,
    ],
    [
      'timeInput.steps',
      { timeInput: { kind: 'step', steps: 500 } },
      /timeInput\.steps: timeInput\.steps 500 differs from schedule\.steps 1000/,
    ],
    ['valueRange', { valueRange: [1, -1] }, /valueRange: valueRange must be \[low, high\]/],
    ['onnx', { onnx: 'nope.onnx' }, /names ONNX file "nope\.onnx", which does not exist/],
    [
      'format',
      { format: 'dg-studio/score-model@9' },
      /format: choose one of dg-studio\/score-model@1 \(you gave "dg-studio\/score-model@9"\)/,
    ],
  ])('score model: %s', async (name, patch, message) => {
    await expect(loadScoreModel(await score(`s-${name}`, patch))).rejects.toThrow(message);
  });

  it('score model: an input the manifest does not feed is named, with the fix', async () => {
    const m = await withManifest(dir, 's-class', fx('inspect/unet-class/model.onnx'), { ...good, dataShape: [3, 16, 16] });
    await expect(loadScoreModel(m)).rejects.toThrow(
      /also has the input "class_labels", .* set io\.classLabel to "class_labels" and give "classes"/,
    );
  });

  it('score model: a timeDType or timeShape the file contradicts is a warning, and the file wins', async () => {
    const warnings: string[] = [];
    const m = await score('s-dtype', { timeDType: 'float32', timeShape: 'scalar' });
    const model = await loadScoreModel(m, { onWarning: (w) => warnings.push(w) });
    expect(warnings.join('\n')).toMatch(/timeDType is "float32", but the file's input "t" is int64; using int64/);
    expect(warnings.join('\n')).toMatch(/timeShape is "scalar", but the file's input "t" has shape \[N\]; using "batch"/);
    await model.dispose();
  });

  it('score model: a manifest without timeDType reads it from the file (a diffusers export with a scalar time works)', async () => {
    const r = await inspectOnnxFile(fx('inspect/unet-diffusers/model.onnx'));
    const { timeDType: _d, timeShape: _s, ...rest } = r.inspection.manifest;
    const model = await loadScoreModel(await withManifest(dir, 's-nodtype', fx('inspect/unet-diffusers/model.onnx'), rest));
    const out = await model.denoiser()({ data: new Float32Array(3 * 768), shape: [3, 3, 16, 16] }, Float64Array.from([0.5, 1, 2]));
    expect(out.data.length).toBe(3 * 768);
    await model.dispose();
  });

  const disc = fx('inspect/disc-torch/model.onnx');
  const discGood = {
    format: 'dg-studio/discriminator@1',
    kind: 'onnx',
    io: { x: 'x', t: 'timestep', output: 'logit' },
    timeInput: { kind: 'step', steps: 1000 },
    dataShape: [3, 16, 16],
  };
  it.each([
    [
      'io.t missing (the default "t")',
      { io: { x: 'x', output: 'logit' } },
      /io\.t is "t", but the ONNX file has no input of that name; its inputs are "x", "timestep"/,
    ],
    ['io.x', { io: { x: 'img', t: 'timestep', output: 'logit' } }, /io\.x is "img", .*its inputs are "x", "timestep"/],
    ['io.output', { io: { x: 'x', t: 'timestep', output: 'prob' } }, /io\.output is "prob", .*its outputs are "logit"/],
    ['dataShape', { dataShape: [3, 32, 32] }, /input "x" has shape \[batch, 3, 16, 16\], but dataShape is \[3, 32, 32\]/],
    ['classes without a class input', { classes: ['a', 'b'] }, /"classes" is given, but the ONNX file has no class_label input/],
    [
      'timeInput',
      { timeInput: { kind: 'edm-c-noise' } },
      /timeInput\.kind: choose one of 't' \| 'step' \| 'sigma' \(you gave "edm-c-noise"\)/,
    ],
  ])('discriminator: %s', async (name, patch, message) => {
    const m = await withManifest(dir, `d-${name.replace(/\W+/g, '-')}`, disc, { ...discGood, ...patch });
    await expect(loadDiscriminator(m)).rejects.toThrow(message);
  });

  it('discriminator: timeDType is read from the file (no more "Unexpected input data type" mid-run); a contradicting one and an old spelling are notes', async () => {
    const warnings: string[] = [];
    const m = await withManifest(dir, 'd-old', disc, { ...discGood, timeDType: 'float32', timeInput: { kind: 'lvp-tau', scale: 999 } });
    const d = await loadDiscriminator(m, undefined, { onWarning: (w) => warnings.push(w) });
    const text = warnings.join('\n');
    expect(text).toMatch(/timeInput\.kind "lvp-tau" is now spelled "t"/);
    expect(text).toMatch(/timeDType is "float32", but the file's input "timestep" is int64; using int64/);
    expect(text).toMatch(/int64 but timeInput is "t": τ will be rounded/);
    expect(d.manifest.kind === 'onnx' && d.manifest.timeInput).toEqual({ kind: 't', scale: 999 });
    await d.dispose();
  });
});

describe('dg-studio inspect (CLI)', async () => {
  const dir = await tempDir();
  await mkdir(join(dir, 'm'));
  await copyFile(fx('inspect/disc-torch/model.onnx'), join(dir, 'm', 'model.onnx'));

  it('writes a checked manifest beside the file, refuses to overwrite it, and prints JSON on request', async () => {
    const first = await cli(['inspect', join(dir, 'm', 'model.onnx'), '--name', 'my disc']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/kind: discriminator/);
    expect(first.stdout).toMatch(/checked: it loads and runs on 2 items\. Written to .*manifest\.json/);
    const written = JSON.parse(await readFile(join(dir, 'm', 'manifest.json'), 'utf8'));
    expect(written).toMatchObject({ name: 'my disc', io: { t: 'timestep' } });
    const again = await cli(['inspect', join(dir, 'm', 'model.onnx')]);
    expect(again.code).toBe(2);
    expect(again.stdout).toMatch(/exists; give --force/);
    const json = await cli(['inspect', join(dir, 'm', 'model.onnx'), '--json', '--no-write']);
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'discriminator', problem: null, written: null });
  });

  it('a proposal that does not run is printed with the reason, and nothing is written (exit 1)', async () => {
    await mkdir(join(dir, 'v'));
    await copyFile(fx('inspect/unet-diffusers/model.onnx'), join(dir, 'v', 'model.onnx'));
    const r = await cli([
      'inspect',
      join(dir, 'v', 'model.onnx'),
      '--kind',
      'score',
      '--data-shape',
      '3,16,16',
      '--prediction',
      'edm-denoiser',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /does NOT work as it stands, so nothing was written:\n[^]*prediction: an edm-denoiser prediction needs the edm schedule/,
    );
    await expect(readFile(join(dir, 'v', 'manifest.json'))).rejects.toThrow();
  });
});
