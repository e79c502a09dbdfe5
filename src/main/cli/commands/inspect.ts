/**
 * `dg-studio inspect model.onnx`: what the file takes and gives, what it probably is, and a proposed
 * manifest that has been loaded and run once on a tiny batch before it is written.
 */
import { InvalidArgumentError, Option, type Command } from '@commander-js/extra-typings';
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MANIFEST_FORMATS, type ManifestKind } from '../../../shared/manifest.js';
import type { InspectedTensor } from '../../engine/models/inspect.js';
import { EXECUTION_PROVIDERS } from '../../engine/onnx/session.js';
import { inspectOnnxFile } from '../../services/inspect-model.js';
import { isDiffusersFolder } from '../../engine/models/diffusers-folder.js';
import { loadLatentModel } from '../../engine/models/latent-model.js';
import { pair, positiveInt } from '../options.js';
import { runAction } from '../run.js';

function table(rows: InspectedTensor[]): string {
  const w = (f: (r: InspectedTensor) => string) => Math.max(...rows.map((r) => f(r).length));
  const shape = (r: InspectedTensor) => `[${r.shape?.join(', ') ?? '?'}]`;
  const [a, b, c] = [w((r) => r.name), w((r) => r.dtype), w(shape)];
  return rows.map((r) => `  ${r.name.padEnd(a)}  ${r.dtype.padEnd(b)}  ${shape(r).padEnd(c)}  ${r.role.padEnd(6)}  ${r.why}`).join('\n');
}

/** A Stable Diffusion-family folder: what was read from its files and checked (issue 27), or why it cannot be used. */
async function inspectLatentFolder(dir: string, o: InspectOptions): Promise<number> {
  let model;
  try {
    model = await loadLatentModel(dir, { executionProvider: o.provider });
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  try {
    const { folder: f, io } = model;
    const facts = {
      pipeline: f.pipeline,
      prediction: f.scheduler.prediction_type,
      schedule: f.schedule,
      timestepSpacing: f.scheduler.timestep_spacing,
      stepsOffset: f.scheduler.steps_offset,
      vaeScalingFactor: f.vaeScalingFactor,
      ...io,
    };
    if (o.json) console.log(JSON.stringify(facts, null, 2));
    else {
      console.log(`${basename(resolve(dir))}: ${f.pipeline} — a latent, text-conditioned model (diffusers' ONNX layout), ready to use`);
      console.log(
        `  scheduler: ${f.scheduler.beta_schedule} betas ${f.scheduler.beta_start}…${f.scheduler.beta_end} over ${f.scheduler.num_train_timesteps} steps, ${f.scheduler.prediction_type}, ${f.scheduler.timestep_spacing} timesteps (offset ${f.scheduler.steps_offset})`,
      );
      console.log(`  text encoder: input_ids ${io.inputIds}, states of width ${io.textHidden ?? '?'}`);
      console.log(
        `  UNet: sample ${io.sampleType}, timestep ${io.timestep.type} (${io.timestep.shape}), ${io.latentChannels} latent channels`,
      );
      console.log(
        `  VAE: encoder gives ${io.encoderOutput}${io.encoderOutput === 'latent_parameters' ? ' (its mean is taken)' : ''}, scaling factor ${f.vaeScalingFactor}`,
      );
      console.log(`use it: translate photo.jpg --model ${dir} --prompt "…"`);
    }
    return 0;
  } finally {
    await model.dispose();
  }
}

async function runInspect(file: string, o: InspectOptions): Promise<number> {
  if (isDiffusersFolder(file)) return inspectLatentFolder(file, o);
  let checked;
  try {
    checked = await inspectOnnxFile(
      file,
      { kind: o.kind, name: o.name, dataShape: o.dataShape, prediction: o.prediction, valueRange: o.valueRange },
      { executionProvider: o.provider },
    );
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  const { inspection: ins, problem, warnings } = checked;
  const text = JSON.stringify(ins.manifest, null, 2);
  const out = resolve(o.out ?? join(dirname(file), 'manifest.json'));
  let written: string | null = null;
  let writeProblem: string | null = null;
  if (!problem && o.write) {
    if (resolve(dirname(out)) !== resolve(dirname(file)))
      writeProblem = `--out must lie in the ONNX file's folder (${dirname(file)}): a manifest names files beside it`;
    else if (existsSync(out) && !o.force) writeProblem = `"${out}" exists; give --force to replace it or --out another name`;
    else {
      const tmp = `${out}.tmp-${process.pid}`;
      await writeFile(tmp, text + '\n');
      await rename(tmp, out);
      written = out;
    }
  }
  if (o.json) {
    console.log(JSON.stringify({ ...ins, problem, warnings, written, writeProblem }, null, 2));
  } else {
    console.log(`${basename(file)}${ins.producer ? ` (made by ${ins.producer}` : ' ('}${ins.producer ? ', ' : ''}opset ${ins.opset})`);
    console.log(`inputs:\n${table(ins.inputs)}\noutputs:\n${table(ins.outputs)}`);
    console.log(`kind: ${ins.kind} (${MANIFEST_FORMATS[ins.kind]}) — ${ins.kindWhy}`);
    console.log(`guessed, check these:\n${ins.guesses.map((g) => `  - ${g}`).join('\n')}`);
    for (const w of warnings) console.log(`warning: ${w}`);
    console.log(`proposed manifest:\n${text}`);
    if (problem)
      console.log(
        `\nthe proposal does NOT work as it stands, so nothing was written:\n  ${problem}\nedit the fields above (docs/manifests.md) and save them as ${out}`,
      );
    else if (written)
      console.log(
        `\nchecked: it loads and runs on 2 items. Written to ${written}; use it with --model/--discriminator ${dirname(written)}`,
      );
    else if (writeProblem) console.log(`\nchecked: it loads and runs on 2 items, but it was not written: ${writeProblem}`);
    else console.log('\nchecked: it loads and runs on 2 items (not written: --no-write)');
  }
  return problem ? 1 : writeProblem ? 2 : 0;
}

function inspectCommand(program: Command) {
  return program
    .command('inspect')
    .description('read an ONNX file, guess what it is (score model, discriminator, classifier) and propose a checked manifest')
    .argument(
      '<model.onnx>',
      "the ONNX file, or a Stable Diffusion-family folder in diffusers' ONNX layout (what was read from it is shown)",
    )
    .addOption(
      new Option('--kind <kind>', 'what the file is (default: guessed from its outputs)').choices(
        Object.keys(MANIFEST_FORMATS) as ManifestKind[],
      ),
    )
    .option('--data-shape <dims>', "one item's shape when the file leaves it open, e.g. 3,64,64", (v: string) => {
      const dims = v.split(',').map(positiveInt('--data-shape'));
      if (dims.length < 2) throw new InvalidArgumentError(`--data-shape takes one item's dims, e.g. 3,64,64; got "${v}"`);
      return dims;
    })
    .addOption(
      new Option('--prediction <p>', 'what a score model predicts (default: eps)').choices([
        'eps',
        'x0',
        'v',
        'edm-denoiser',
        'score',
      ] as const),
    )
    .option('--value-range <lo,hi>', 'pixel range the network was trained on (default -1,1)', pair('--value-range'))
    .option('--name <name>', "the model's name in the studio (default: the file name)")
    .option('--out <manifest>', "where to write the manifest, in the ONNX file's folder (default: manifest.json there)")
    .option('--force', 'replace an existing manifest', false)
    .option('--no-write', 'only print the proposal')
    .option('--json', 'print the inspection as JSON', false)
    .addOption(
      new Option('--provider <ep>', 'ONNX Runtime execution provider for the dry run').choices(EXECUTION_PROVIDERS).default('cpu' as const),
    );
}
type InspectOptions = ReturnType<ReturnType<typeof inspectCommand>['opts']>;

export function addInspect(program: Command): void {
  inspectCommand(program).action((file, o) => runAction(() => runInspect(file, o)));
}
