#!/usr/bin/env node
/**
 * dg-studio command line: a thin adapter over the services.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { fraction, int, list, nonNegative, nonNegativeInt, pair, positive, positiveInt, seed } from './options.js';
import cliProgress from 'cli-progress';
import { SAMPLER_LABELS, SAMPLER_NAMES, TranslateParamsSchema } from '../../shared/params.js';

const DEFAULT_PARAMS = TranslateParamsSchema.parse({});
import { ENGINE_VERSION } from '../../shared/version.js';
import { EXECUTION_PROVIDERS } from '../engine/onnx/session.js';
import type { FeatureTimeEncoding } from '../engine/nn/frozen-features.js';
import { Gallery, parametersFromPng } from '../services/gallery.js';
import { Studies } from '../services/studies.js';
import { bundledDefaults, dataDir, defaultGalleryDir, resourcesDir } from '../services/resources.js';
import { exportDiscriminator, trainDiscriminator } from '../services/discriminator-training.js';
import { diagnosePaths } from '../services/path-diagnostics.js';
import { runSweep } from '../services/sweep.js';
import { DEFAULT_PORT, OTHER_STUDIOS_PORTS, startServer } from '../server.js';
import { startBackendProcess } from '../backend-process.js';
import { serverToken } from '../services/server-token.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { translateFiles } from '../services/translate-files.js';
import { manifestPathOf, readJsonFile } from '../engine/score-model.js';
import { addTrainScoreModel } from './train-score-model.js';
import { addInspect } from './inspect.js';
import { effectiveArgv, rerunIfLong } from './long-command-line.js';

interface TranslateOpts {
  model?: string;
  t0?: number;
  dgWeight?: number;
  dgWeight2?: number;
  dgWindow: [number, number];
  steps: number;
  sampler: (typeof SAMPLER_NAMES)[number];
  seed: number;
  batchSize: number;
  eta: number;
  churn: number;
  spacing: 'karras' | 'uniform';
  boostPeriod?: number;
  boostChurn: number;
  classLabel?: number;
  classifier?: string;
  cgWeight?: number;
  out: string;
  keepNames: boolean;
  provider: (typeof EXECUTION_PROVIDERS)[number];
  threads?: number;
  json: boolean;
  progress: boolean;
  gallery?: string | false;
  resumeRun?: number;
}

export function buildProgram(): Command {
  const program = new Command('dg-studio')
    .description('Image-to-image translation with diffusion models and Discriminator Guidance')
    .version(ENGINE_VERSION)
    .showHelpAfterError()
    // usage errors exit 2, like every other bad-input error of this CLI
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

  program
    .command('translate')
    .description('translate images (files or folders) SDEdit-style, with optional discriminator guidance')
    .argument('<inputs...>', 'image files or folders of images')
    .option('--model <manifest>', 'score-model manifest or its folder (default: the bundled default)')
    .option(
      '--discriminator <manifest>',
      'discriminator manifest or its folder for guidance (default: the bundled one, but only when --model is not given)',
    )
    .option('--no-discriminator', 'plain SDEdit, no discriminator')
    .option(
      '--t0 <t>',
      "SDEdit start time in (0, 1]: larger is more target-like, less faithful (default: the model's recommended t0, else 0.5)",
      fraction('--t0'),
    )
    .option(
      '--dg-weight <w>',
      "DG weight w (default: the discriminator's recommended weight, else 1; 0 without a discriminator = plain SDEdit)",
      nonNegative('--dg-weight'),
    )
    .option(
      '--dg-weight2 <w>',
      "DG weight on Heun's second stage (default: the same as --dg-weight; the paper uses 0 with w = 2)",
      nonNegative('--dg-weight2'),
    )
    .option('--dg-window <lo,hi>', 'apply DG only for LVP τ in [lo, hi]', pair('--dg-window'), [0.01, 1] as [number, number])
    .option(
      '--steps <n>',
      "steps over [0, t0]; Heun evaluates the network twice a step but the last (the run's first line states the total)",
      positiveInt('--steps'),
      DEFAULT_PARAMS.steps,
    )
    .addOption(new Option('--sampler <name>', 'sampler').choices(SAMPLER_NAMES).default(DEFAULT_PARAMS.sampler))
    .option('--seed <n>', 'seed of the first image; image i uses seed + i', seed('--seed'), 0)
    .option('--batch-size <n>', 'images per model call', positiveInt('--batch-size'), 4)
    .option('--eta <eta>', 'DDIM η (0 deterministic, 1 = DDPM)', nonNegative('--eta'), 0)
    .option('--churn <s>', 'EDM S_churn for euler/heun', nonNegative('--churn'), 0)
    .addOption(
      new Option(
        '--spacing <kind>',
        'σ ladder: karras, uniform in time, or uniform in λ = −log σ (discrete-time models: on the nearest integer steps)',
      )
        .choices(['karras', 'uniform', 'lambda'])
        .default('karras'),
    )
    .option(
      '--boost-period <n>',
      'adaptive boosting: every n steps double w for samples the discriminator calls fake',
      positiveInt('--boost-period'),
    )
    .option('--boost-churn <s>', 'adaptive boosting: extra S_churn for those samples', nonNegative('--boost-churn'), 0)
    .option('--class-label <k>', 'class for class-conditional models and for classifier guidance', nonNegativeInt('--class-label'))
    .option('--classifier <manifest>', 'classifier guidance (paper Eq. 6): a classifier manifest or its folder; give --class-label')
    .option('--cg-weight <w>', 'classifier-guidance weight (default: 1 when --classifier is given, else 0)', nonNegative('--cg-weight'))
    .option('--out <dir>', 'output folder', 'outputs')
    .option('--keep-names', 'name each output after its input (cat.jpg → cat.png + cat.json), for data-set work', false)
    .addOption(new Option('--provider <ep>', 'ONNX Runtime execution provider').choices(EXECUTION_PROVIDERS).default('cpu'))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', positiveInt('--threads'))
    .option('--gallery <dir>', 'record results in this gallery (default: the studio gallery)')
    .option('--no-gallery', 'do not record results in a gallery')
    .option('--resume-run <id>', 'continue an interrupted gallery run (same inputs and parameters)', positiveInt('--resume-run'))
    .option('--json', 'print one JSON record per output on stdout', false)
    .option('--no-progress', 'no progress bar')
    .action(async (inputs: string[], o: TranslateOpts & { discriminator?: string | false }) => {
      process.exitCode = await runTranslate(inputs, o);
    });
  program
    .command('serve')
    .description('serve the studio to a browser: the same API over HTTP + WebSocket, loopback and token-protected')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', `port (0: any free one; default ${DEFAULT_PORT}, which no other studio uses)`, int('--port'), DEFAULT_PORT)
    .option('--data <dir>', 'studio data folder (gallery, inbox, trained discriminators)')
    .option('--token <token>', 'access token (default: kept in the data folder, so open pages keep working after a restart)')
    .option('--new-token', 'make a new access token (pages opened with the old one must be reopened)', false)
    .option('--allow-root <dirs...>', 'more folders the output folder may lie in (default: the data folder and your home)')
    .action(async (o: ServeOpts) => {
      process.exitCode = await serve(o);
    });

  const gallery = program.command('gallery').description('the SQLite-indexed gallery of results');
  const withGallery = async (dir: string | undefined, f: (g: Gallery) => Promise<number | void> | number | void) => {
    const g = await Gallery.open(dir ?? defaultGalleryDir());
    try {
      process.exitCode = (await f(g)) ?? 0;
    } catch (e) {
      console.error(`error: ${(e as Error).message}`);
      process.exitCode = 2;
    } finally {
      g.db.close();
    }
  };
  const ids = (v: string, prev: number[] = []) => [...prev, ...v.split(',').map(int('id'))];
  gallery
    .command('list')
    .description('newest results first, filtered')
    .option('--dir <dir>', 'gallery folder')
    .option('--model <name>', 'score model name')
    .option('--t0 <lo,hi>', 't0 range', pair('--t0'))
    .option('--dg-weight <w>', 'DG weight', nonNegative('--dg-weight'))
    .option('--tag <tag>', 'tag')
    .option('--text <text>', 'text in notes, source paths, model names')
    .option('--favourites', 'favourites only')
    .option('--errors', 'include failed images')
    .option('--limit <n>', 'rows', positiveInt('--limit'), 50)
    .option('--json', 'JSON lines')
    .action(
      (o: {
        dir?: string;
        model?: string;
        t0?: [number, number];
        dgWeight?: number;
        tag?: string;
        text?: string;
        favourites?: boolean;
        errors?: boolean;
        limit: number;
        json?: boolean;
      }) =>
        withGallery(o.dir, (g) => {
          const rows = g.search({
            model: o.model,
            t0Min: o.t0?.[0],
            t0Max: o.t0?.[1],
            dgWeight: o.dgWeight,
            tag: o.tag,
            text: o.text,
            favourite: o.favourites,
            includeErrors: o.errors,
            limit: o.limit,
          });
          for (const r of rows) {
            if (o.json) console.log(JSON.stringify(r));
            else
              console.log(
                `${r.id}\t${r.createdAt}\tt0=${r.t0} w=${r.dgWeight} seed=${r.seed}\t${r.modelName}\t${r.error ? `ERROR ${r.error}` : r.sourcePath}${r.favourite ? ' ★' : ''}${r.tags.length ? ` [${r.tags.join(', ')}]` : ''}`,
              );
          }
        }),
    );
  gallery
    .command('show')
    .argument('<id>', 'output id', int('id'))
    .option('--dir <dir>', 'gallery folder')
    .action((id: number, o: { dir?: string }) =>
      withGallery(o.dir, (g) => {
        const r = g.get(id);
        if (!r) throw new Error(`the gallery has no output ${id}`);
        console.log(JSON.stringify({ ...r, file: r.sha256 ? g.objectPath(r.sha256) : null }, null, 2));
      }),
    );
  gallery
    .command('export')
    .argument('<ids>', 'comma-separated output ids', ids)
    .requiredOption('--out <dir>', 'folder')
    .option('--dir <dir>', 'gallery folder')
    .action((list: number[], o: { out: string; dir?: string }) =>
      withGallery(o.dir, async (g) => {
        const files = await g.export(list, o.out);
        console.error(`exported ${files.length} image(s) with JSON sidecars to ${o.out}`);
      }),
    );
  gallery
    .command('reuse')
    .description('print the parameters of an output (by id, or from a PNG the studio wrote) as translate options')
    .argument('<idOrPng>', 'output id or PNG path')
    .option('--dir <dir>', 'gallery folder')
    .option('--json', 'as JSON')
    .action((what: string, o: { dir?: string; json?: boolean }) =>
      withGallery(o.dir, async (g) => {
        const p = /^\d+$/.test(what) ? g.get(Number(what))?.params : await parametersFromPng(what);
        if (!p) throw new Error(`the gallery has no output ${what}`);
        if (o.json) console.log(JSON.stringify(p));
        else
          console.log(
            `--t0 ${p.t0} --dg-weight ${p.dgWeight}${p.dgWeight2 === null ? '' : ` --dg-weight2 ${p.dgWeight2}`} --dg-window ${p.dgWindow.join(',')} --steps ${p.steps} --sampler ${p.sampler} --seed ${p.seed} --eta ${p.eta} --churn ${p.churn} --spacing ${p.spacing}`,
          );
      }),
    );
  gallery
    .command('delete')
    .argument('<ids>', 'comma-separated output ids', ids)
    .option('--dir <dir>', 'gallery folder')
    .action((list: number[], o: { dir?: string }) =>
      withGallery(o.dir, async (g) => {
        console.error(`deleted ${await g.delete(list)} output(s)`);
      }),
    );

  const study = program.command('study').description('blind human studies of realism and faithfulness over gallery results');
  const setting = (name: string) => (v: string) => {
    const m = /^t0=([\d.]+),w=([\d.]+)$/.exec(v.replace(/\s+/g, ''));
    if (!m) throw new InvalidArgumentError(`${name} takes "t0=0.5,w=2", got "${v}"`);
    return { t0: Number(m[1]), dgWeight: Number(m[2]) };
  };
  study
    .command('create')
    .description('pair results of two settings (same sources and seeds) into a blind A/B study')
    .requiredOption('--name <name>', 'study name')
    .requiredOption(
      '--setting <setting>',
      'a setting to compare, e.g. "t0=0.5,w=0"; give two (A/B) or more (a grid)',
      (v: string, prev: { t0: number; dgWeight: number }[] = []) => [...prev, setting('--setting')(v)],
    )
    .addOption(new Option('--question <q>', 'what annotators judge').choices(['realism', 'faithfulness']).default('realism'))
    .option('--seed <n>', 'seed of the order and sides', seed('--seed'), 0)
    .option('--dir <dir>', 'gallery folder')
    .action(
      (o: {
        name: string;
        a: { t0: number; dgWeight: number };
        b: { t0: number; dgWeight: number };
        question: 'realism' | 'faithfulness';
        seed: number;
        dir?: string;
      }) =>
        withGallery(o.dir, (g) => {
          const id = new Studies(g).create(o);
          console.log(id);
          console.error(`created study ${id}; annotate it in the studio (Annotate tab)`);
        }),
    );
  study
    .command('export')
    .argument('<id>', 'study id', int('id'))
    .requiredOption('--out <dir>', 'folder for judgements.csv, judgements.json and summary.json')
    .option('--dir <dir>', 'gallery folder')
    .action((id: number, o: { out: string; dir?: string }) =>
      withGallery(o.dir, async (g) => {
        const st = new Studies(g);
        const rows = st.rows(id);
        const { mkdir } = await import('node:fs/promises');
        const { writeFileAtomic } = await import('../engine/image-io.js');
        await mkdir(o.out, { recursive: true });
        await writeFileAtomic(join(o.out, 'judgements.csv'), st.csv(id));
        await writeFileAtomic(join(o.out, 'judgements.json'), JSON.stringify(rows, null, 2));
        await writeFileAtomic(join(o.out, 'summary.json'), JSON.stringify(await st.summary(id), null, 2));
        console.error(`exported ${rows.length} judgement(s) to ${o.out}`);
      }),
    );
  study
    .command('summary')
    .argument('<id>', 'study id', int('id'))
    .option('--reference <dirs...>', 'target-domain images: also rank the settings by SWD and Fréchet distance and compare with the humans')
    .option('--dir <dir>', 'gallery folder')
    .action((id: number, o: { dir?: string; reference?: string[] }) =>
      withGallery(o.dir, async (g) => {
        const { expandInputs } = await import('../services/translate-files.js');
        const { readImage } = await import('../engine/image-io.js');
        const spec = { channels: 3 as const, height: 64, width: 64, valueRange: [-1, 1] as const };
        const reference = o.reference ? await Promise.all((await expandInputs(o.reference)).map((f) => readImage(f, spec))) : undefined;
        console.log(JSON.stringify(await new Studies(g).summary(id, reference), null, 2));
      }),
    );

  program
    .command('sweep')
    .description('translate over a t0 × DG-weight grid and measure realism against faithfulness (CSV, JSON, frontier plots)')
    .argument('<inputs...>', 'source images (files or folders)')
    .requiredOption('--reference <dirs...>', 'target-domain reference images for the realism metrics')
    .option('--ground-truth <dirs...>', 'true targets, matched to sources by file name (paired metrics)')
    .option('--t0 <list>', 't0 values', list('--t0'), [0.2, 0.4, 0.6])
    .option('--dg-weight <list>', 'DG weights (0 = plain SDEdit)', list('--dg-weight'), [0, 1, 2])
    .option('--model <manifest>', 'score-model manifest (default: the bundled default)')
    .option('--discriminator <manifest>', 'discriminator manifest (default: the bundled one)')
    .option('--steps <n>', 'sampler steps', positiveInt('--steps'), DEFAULT_PARAMS.steps)
    .addOption(new Option('--sampler <name>', 'sampler').choices(SAMPLER_NAMES).default(DEFAULT_PARAMS.sampler))
    .option('--seed <n>', 'seed of the first image', seed('--seed'), 0)
    .option('--batch-size <n>', 'images per model call', positiveInt('--batch-size'), 4)
    .option('--features <onnx>', 'feature extractor ONNX for Fréchet distance and KID (default: fixed random conv features)')
    .option('--feature-output <name>', 'output of the feature extractor to use')
    .option('--no-images', 'do not write the translated images')
    .requiredOption('--out <dir>', 'output folder')
    .addOption(new Option('--provider <ep>', 'ONNX Runtime execution provider').choices(EXECUTION_PROVIDERS).default('cpu'))
    .option('--threads <n>', 'ONNX Runtime threads', positiveInt('--threads'))
    .action(async (inputs: string[], o: SweepOpts) => {
      process.exitCode = await runSweepCli(inputs, o);
    });

  program
    .command('diagnose-paths')
    .description('log r along time for real forward paths, unguided and guided sampling paths (paper Fig. 8): CSV + PNG')
    .argument('<inputs...>', 'source images (files or folders)')
    .requiredOption('--reference <dirs...>', 'target-domain images for the real forward paths')
    .option('--model <manifest>', 'score-model manifest (default: the bundled default)')
    .option('--discriminator <manifest>', 'discriminator manifest (default: the bundled one)')
    .option('--t0 <t>', 'SDEdit start time', fraction('--t0'), 0.6)
    .option('--dg-weight <w>', 'DG weight of the guided paths', nonNegative('--dg-weight'), 1)
    .option('--steps <n>', 'sampler steps', positiveInt('--steps'), DEFAULT_PARAMS.steps)
    .option('--seed <n>', 'seed', seed('--seed'), 0)
    .requiredOption('--out <dir>', 'output folder')
    .action(
      async (
        inputs: string[],
        o: {
          reference: string[];
          model?: string;
          discriminator?: string;
          t0: number;
          dgWeight: number;
          steps: number;
          seed: number;
          out: string;
        },
      ) => {
        try {
          const d = o.model && o.discriminator ? null : bundledDefaults();
          const disc = o.discriminator ?? d?.discriminator;
          if (!disc) throw new Error('give a discriminator (--discriminator)');
          const r = await diagnosePaths({
            sources: inputs,
            reference: o.reference,
            modelManifest: o.model ?? d!.scoreModel,
            discriminatorManifest: disc,
            t0: o.t0,
            weight: o.dgWeight,
            params: { steps: o.steps, seed: o.seed },
            outDir: o.out,
          });
          console.error(`wrote ${r.csvPath} and ${r.plotPath}`);
        } catch (e) {
          console.error(`error: ${(e as Error).message}`);
          process.exitCode = 2;
        }
      },
    );

  program
    .command('train-discriminator')
    .description('train a source-vs-target discriminator for DG (real = target images; fake = sources and their unguided translations)')
    .requiredOption('--source <dirs...>', 'source-domain images (files or folders)')
    .requiredOption('--target <dirs...>', 'target-domain images (files or folders)')
    .option('--model <manifest>', 'target score model (default: the bundled default)')
    .option('--t0 <lo,hi>', 't0 range you will translate with', pair('--t0'), [0.3, 0.7] as [number, number])
    .option('--steps <n>', 'training steps (at least 1)', positiveInt('--steps'), 2000)
    .option('--epochs <n>', 'passes over the training images (overrides --steps)', positive('--epochs'))
    .option('--batch-size <n>', 'images per step (half real, half fake)', positiveInt('--batch-size'), 32)
    .option('--lr <lr>', 'Adam learning rate', positive('--lr'), 2e-3)
    .addOption(new Option('--loss <loss>', 'density-ratio loss').choices(['bce', 'lsif', 'ukl']).default('bce'))
    .addOption(new Option('--time-sampling <kind>', 'τ sampling').choices(['importance', 'uniform']).default('importance'))
    .option('--translations <k>', 'unguided translations per source image', nonNegativeInt('--translations'), 1)
    .option('--translation-steps <n>', 'sampler steps for those translations', positiveInt('--translation-steps'), 10)
    .option('--fakes <dirs...>', 'more fake images: unguided translations made elsewhere (e.g. on a GPU by tools/device-train.sh)')
    .option('--channels <list>', 'encoder channels per level', (v: string) => v.split(',').map(positiveInt('--channels')))
    .option(
      '--downsample <f>',
      'average-pool images by f inside the discriminator (default 2: a 32×32 view of 64×64 images)',
      positiveInt('--downsample'),
    )
    .option('--classes', 'class-conditional: source and target folders hold one subfolder per class', false)
    .option('--features <onnx>', "the paper's design: a frozen feature extractor (ONNX) with a trained head; give --feature-tensor")
    .option('--feature-tensor <name>', 'the tensor to cut the feature extractor at')
    .option('--feature-time <input>', "a time-conditioned extractor (a noisy classifier, a score model's U-Net): its input that takes time")
    .option(
      '--feature-time-encoding <enc>',
      'how τ is fed to it: stepT (DDPM step round(τ·(T−1)), e.g. step1000) or tau',
      (v: string): FeatureTimeEncoding => {
        if (v === 'tau') return { kind: 'tau' };
        const m = /^step(\d+)$/.exec(v);
        if (!m || Number(m[1]) < 2)
          throw new InvalidArgumentError(`--feature-time-encoding takes stepT (e.g. step1000) or tau, got "${v}"`);
        return { kind: 'ddpm-step', steps: Number(m[1]) };
      },
      { kind: 'ddpm-step', steps: 1000 } as FeatureTimeEncoding,
    )
    .option('--val-fraction <f>', 'held-out share of images (split by file name)', fraction('--val-fraction'), 0.1)
    .option('--seed <n>', 'seed', seed('--seed'), 0)
    .option('--eval-every <n>', 'validate every n steps', positiveInt('--eval-every'), 250)
    .option('--resume', 'continue from the checkpoint in --out', false)
    .option('--init <dir>', 'start from the weights of an earlier run of the same architecture (its --out folder)')
    .requiredOption('--out <dir>', 'folder for the discriminator package')
    .addOption(new Option('--provider <ep>', 'ONNX Runtime execution provider').choices(EXECUTION_PROVIDERS).default('cpu'))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', positiveInt('--threads'))
    .action(async (o: TrainOpts) => {
      process.exitCode = await runTrain(o);
    });
  program
    .command('export-discriminator')
    .description(
      "make a usable discriminator package (ONNX + manifest) from a training run's checkpoint, e.g. tools/pretrained/twemoji-vs-noto-disc",
    )
    .argument('<run>', 'a train-discriminator --out folder, or a folder with checkpoint/ and training.json')
    .requiredOption('--out <dir>', 'folder for the package (give it to --discriminator)')
    .option('--name <name>', "the discriminator's name (default: the run folder and step)")
    .action(async (run: string, o: { out: string; name?: string }) => {
      try {
        const r = await exportDiscriminator(run, o.out, o.name);
        console.error(`wrote ${r.manifestPath} (weights of step ${r.step}; checked by loading it and a dry run)`);
      } catch (e) {
        console.error(`error: ${(e as Error).message}`);
        process.exitCode = 2;
      }
    });
  addTrainScoreModel(program);
  addInspect(program);
  return program;
}

interface SweepOpts {
  reference: string[];
  groundTruth?: string[];
  t0: number[];
  dgWeight: number[];
  model?: string;
  discriminator?: string;
  steps: number;
  sampler: (typeof SAMPLER_NAMES)[number];
  seed: number;
  batchSize: number;
  features?: string;
  featureOutput?: string;
  images: boolean;
  out: string;
  provider: (typeof EXECUTION_PROVIDERS)[number];
  threads?: number;
}

interface ServeOpts {
  host: string;
  port: number;
  data?: string;
  token?: string;
  newToken: boolean;
  allowRoot?: string[];
}

async function serve(o: ServeOpts): Promise<number> {
  const rendererDir = process.env['DG_STUDIO_RENDERER'] ?? join(dirname(resourcesDir()), 'out', 'renderer');
  if (!existsSync(join(rendererDir, 'index.html'))) {
    console.error(`error: the studio UI is not built (${rendererDir}); run "npm run build" first`);
    return 2;
  }
  if (o.port < 0 || o.port > 65535) {
    console.error(`error: --port must be 0…65535, got ${o.port}`);
    return 2;
  }
  if (OTHER_STUDIOS_PORTS.includes(o.port))
    console.error(`note: port ${o.port} is another studio's default; if it is busy, use --port ${DEFAULT_PORT}`);
  if (o.host !== '127.0.0.1' && o.host !== 'localhost' && o.host !== '::1')
    console.error(`warning: listening on ${o.host}: anyone who can reach it and has the token can use the studio`);
  let token: string;
  try {
    token = o.token ?? (await serverToken(o.data ?? dataDir(), o.newToken));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
  const backend = await startBackendProcess({ dataDir: o.data, mode: 'server', allowedRoots: o.allowRoot, onLog: (l) => console.error(l) });
  let s;
  try {
    s = await startServer({ backend, rendererDir, host: o.host, port: o.port, token });
  } catch (e) {
    await backend.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      console.error(
        `error: port ${o.port} on ${o.host} is already in use (another DG Studio or another program); choose another with --port N, or --port 0 for any free port`,
      );
    else if (code === 'EACCES') console.error(`error: not allowed to listen on ${o.host}:${o.port}; choose a port above 1023`);
    else if (code === 'EADDRNOTAVAIL') console.error(`error: ${o.host} is not an address of this machine`);
    else console.error(`error: cannot start the server: ${(e as Error).message}`);
    return 2;
  }
  console.log(`DG Studio server: ${s.url}`);
  const stop = async () => {
    await s.close();
    await backend.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  return 0;
}

async function runSweepCli(inputs: string[], o: SweepOpts): Promise<number> {
  const defaults = o.model ? null : bundledDefaults();
  try {
    const { plots } = await runSweep(
      {
        inputs,
        reference: o.reference,
        groundTruth: o.groundTruth,
        t0s: o.t0,
        weights: o.dgWeight,
        modelManifest: o.model ?? defaults!.scoreModel,
        discriminatorManifest: o.discriminator ?? defaults?.discriminator ?? undefined,
        params: { steps: o.steps, sampler: o.sampler, seed: o.seed, batchSize: o.batchSize },
        outDir: o.out,
        features: o.features ? { onnx: o.features, output: o.featureOutput } : undefined,
        writeImages: o.images,
        executionProvider: o.provider,
        threads: o.threads,
      },
      {
        onStage: (m) => console.error(m),
        onRow: (r) =>
          console.error(
            `t0 ${r.t0} w ${r.w}: L2→source ${r.l2Source.toFixed(4)}, SSIM ${r.ssimSource.toFixed(3)}, SWD ${r.swd.toFixed(2)}, FD ${r.fd.toFixed(3)}, KID ${r.kid.toFixed(4)}` +
              (r.l2Truth !== null ? `, L2→truth ${r.l2Truth.toFixed(4)}` : ''),
          ),
      },
    );
    console.error(`wrote ${o.out}/results.csv, results.json, ${plots.map((p) => p.split('/').pop()).join(', ')}`);
    return 0;
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
}

interface TrainOpts {
  source: string[];
  target: string[];
  model?: string;
  t0: [number, number];
  steps: number;
  epochs?: number;
  batchSize: number;
  lr: number;
  loss: 'bce' | 'lsif' | 'ukl';
  timeSampling: 'importance' | 'uniform';
  translations: number;
  translationSteps: number;
  channels?: number[];
  downsample?: number;
  features?: string;
  featureTensor?: string;
  featureTime?: string;
  fakes?: string[];
  featureTimeEncoding: FeatureTimeEncoding;
  classes: boolean;
  valFraction: number;
  seed: number;
  evalEvery: number;
  resume: boolean;
  init?: string;
  out: string;
  provider: (typeof EXECUTION_PROVIDERS)[number];
  threads?: number;
}

async function runTrain(o: TrainOpts): Promise<number> {
  const modelManifest = o.model ?? bundledDefaults().scoreModel;
  let lastLine = Date.now();
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { format: '{bar} {value}/{total} | loss {loss} | {rate} img/s', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.error('\nstopping: saving a checkpoint and the package so far…');
    controller.abort();
  });
  try {
    let started = false;
    const result = await trainDiscriminator(
      {
        modelManifest,
        sources: o.source,
        targets: o.target,
        outDir: o.out,
        t0Range: o.t0,
        steps: o.steps,
        epochs: o.epochs,
        batchSize: o.batchSize,
        lr: o.lr,
        loss: o.loss,
        timeSampling: o.timeSampling,
        translationsPerSource: o.translations,
        translationSteps: o.translationSteps,
        extraFakes: o.fakes,
        channels: o.channels,
        downsample: o.downsample,
        classes: o.classes,
        frozenFeatures: o.features
          ? {
              onnx: o.features,
              tensor: o.featureTensor ?? '',
              ...(o.featureTime ? { time: { name: o.featureTime, encoding: o.featureTimeEncoding } } : {}),
            }
          : undefined,
        valFraction: o.valFraction,
        seed: o.seed,
        evalEvery: o.evalEvery,
        resume: o.resume,
        init: o.init,
        executionProvider: o.provider,
        threads: o.threads,
      },
      {
        onStage: (m) => console.error(m),
        onWarning: (m) => console.error(`warning: ${m}`),
        onProgress: (p) => {
          // no terminal (a log file, CI): a plain line every 30 s instead of the bar
          if (!bar && Date.now() - lastLine > 30_000) {
            lastLine = Date.now();
            console.error(`step ${p.step}/${p.steps}: loss ${p.lossEma.toFixed(4)}, ${p.itemsPerSecond.toFixed(0)} images/s`);
          }
          if (bar && !started) {
            bar.start(p.steps, p.step, { loss: '…', rate: '…' });
            started = true;
          }
          bar?.update(p.step, { loss: p.lossEma.toFixed(4), rate: p.itemsPerSecond.toFixed(0) });
        },
        onEval: (e) => {
          const line = `step ${e.step}: validation accuracy ${e.accuracy.toFixed(3)}, loss ${e.loss.toFixed(4)} | by τ: ${e.bands.map((b) => `${b.lo.toFixed(2)}–${b.hi.toFixed(2)} ${b.accuracy.toFixed(2)}`).join(', ')}`;
          if (bar) {
            bar.stop();
            started = false;
          }
          console.error(line);
        },
      },
      controller.signal,
    );
    bar?.stop();
    console.error(
      `${result.cancelled ? 'stopped early; ' : ''}wrote ${result.manifestPath} (${result.steps} steps, validation accuracy ${result.validation.accuracy.toFixed(3)})`,
    );
    console.error(`use it: dg-studio translate <images> --discriminator ${result.manifestPath}`);
    return 0;
  } catch (e) {
    bar?.stop();
    console.error(`error: ${(e as Error).message}`);
    return 2;
  }
}

/**
 * A manifest's recommended setting (a score model's `recommendedT0`, a discriminator's `recommendedWeight`),
 * else `fallback`; an unreadable manifest is reported later, when loaded, and the value it gives is checked there.
 */
async function recommended(manifest: string, field: 'recommendedT0' | 'recommendedWeight', fallback: number): Promise<number> {
  const m = (await readJsonFile(manifestPathOf(manifest), 'manifest').catch(() => ({}))) as Record<string, unknown>;
  const v = m[field];
  return typeof v === 'number' && v >= 0 ? v : fallback;
}

async function runTranslate(inputs: string[], o: TranslateOpts & { discriminator?: string | false }): Promise<number> {
  let discriminatorManifest = o.discriminator === false ? undefined : o.discriminator;
  const defaults = o.model ? null : bundledDefaults();
  const modelManifest = o.model ?? defaults!.scoreModel;
  if (defaults) {
    if (o.discriminator === undefined && defaults.discriminator) discriminatorManifest = defaults.discriminator;
    if (defaults.note) console.error(`note: ${defaults.note}`);
  }
  // the DG weight applies only when there is a discriminator (asked for without one, translate
  // warns); its default is the discriminator's recommended weight, else 1
  const dgWeight = o.dgWeight ?? (discriminatorManifest ? await recommended(discriminatorManifest, 'recommendedWeight', 1) : 0);
  const params = TranslateParamsSchema.safeParse({
    t0: o.t0 ?? (await recommended(modelManifest, 'recommendedT0', 0.5)),
    steps: o.steps,
    sampler: o.sampler,
    seed: o.seed,
    batchSize: o.batchSize,
    dgWeight,
    dgWeight2: o.dgWeight2 ?? null,
    dgWindow: o.dgWindow,
    boosting: o.boostPeriod ? { period: o.boostPeriod, churn: o.boostChurn } : null,
    eta: o.eta,
    churn: o.churn,
    spacing: o.spacing,
    classLabel: o.classLabel ?? null,
    cgWeight: o.cgWeight ?? (o.classifier ? 1 : 0),
  });
  if (!params.success) {
    for (const i of params.error.issues) console.error(`error: ${i.path.join('.')}: ${i.message}`);
    return 2;
  }
  const bar =
    o.progress && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { format: '{bar} {percentage}% | image {done}/{total} | step {step}/{steps}', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : null;
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.error('\ncancelling…');
    controller.abort();
  });
  const gallery = o.gallery === false ? undefined : await Gallery.open(o.gallery ?? defaultGalleryDir());
  let runInputs = inputs;
  let runParams = params.data;
  if (o.resumeRun !== undefined) {
    const run = gallery?.run(o.resumeRun);
    if (!run) {
      console.error(`error: the gallery has no run ${o.resumeRun}`);
      gallery?.db.close();
      return 2;
    }
    [runInputs, runParams] = [run.inputs, run.params];
  }
  try {
    const { outputs, errors } = await translateFiles(
      {
        inputs: runInputs,
        outDir: o.out,
        params: runParams,
        modelManifest,
        discriminatorManifest,
        executionProvider: o.provider,
        threads: o.threads,
        gallery,
        resumeRunId: o.resumeRun,
        keepNames: o.keepNames,
        classifierManifest: o.classifier,
      },
      {
        onStart: (s) => {
          const p = runParams;
          const sampler = SAMPLER_LABELS[p.sampler];
          const merged = s.steps < p.steps ? ` (${p.steps} asked; the model's discrete steps allow ${s.steps} distinct ones)` : '';
          console.error(
            `${sampler}, ${s.steps} steps over [0, ${p.t0}]${merged} = ${s.evaluations} network evaluation${s.evaluations === 1 ? '' : 's'} per image`,
          );
          console.error(
            `translating ${s.total} image(s) with "${s.model}"${s.discriminator ? ` + DG "${s.discriminator}" (w = ${p.dgWeight})` : ''}` +
              `${s.classifier ? ` + CG "${s.classifier}" (w = ${p.cgWeight})` : ''} on ${s.provider}`,
          );
          bar?.start(s.total * params.data.steps, 0, { done: 0, total: s.total, step: 0, steps: params.data.steps });
        },
        onStep: (s) => bar?.update(s.done * s.steps + s.step, { done: s.done, total: s.total, step: s.step, steps: s.steps }),
        onResult: (r) => {
          if (o.json) console.log(JSON.stringify(r));
          else if (!bar) console.error(`wrote ${r.output}`);
        },
        onError: (e) => {
          bar?.stop();
          console.error(`error: ${e.message}`);
        },
        onWarning: (m) => console.error(`warning: ${m}`),
      },
      controller.signal,
    );
    bar?.stop();
    console.error(`done: ${outputs.length} written to ${o.out}${errors.length ? `, ${errors.length} failed` : ''}`);
    return errors.length ? 1 : 0;
  } catch (e) {
    bar?.stop();
    const err = e as Error;
    console.error(err.name === 'CancelledError' ? 'cancelled: images written so far are kept' : `error: ${err.message}`);
    return 2;
  } finally {
    gallery?.db.close();
  }
}

/** The CLI's entry: parse the command line (re-run from a file when it is too long for ONNX Runtime) and run it. */
export async function main(argv: string[]): Promise<void> {
  const code = await rerunIfLong(argv);
  if (code !== null) process.exit(code);
  await buildProgram().parseAsync(effectiveArgv(argv));
}

const isMain = process.argv[1] && /cli(\/index)?\.(ts|js|mjs)$/.test(process.argv[1]);
if (isMain) {
  main(process.argv).catch((e: Error) => {
    console.error(`error: ${e.message}`);
    process.exit(2);
  });
}
