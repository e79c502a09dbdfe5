/** `dg-studio study create|export|summary`: blind human studies over gallery results. */
import { InvalidArgumentError, Option, type Command } from '@commander-js/extra-typings';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateStudySchema } from '../../../shared/api.js';
import { describeIssues } from '../../../shared/errors.js';
import { readImage, writeFileAtomic } from '../../engine/io/image-io.js';
import { AnnotatorLinks } from '../../services/annotator-links.js';
import { Studies } from '../../services/studies.js';
import { DEFAULT_PORT } from '../../server/server.js';
import { expandInputs } from '../../services/translate-files.js';
import { galleryOption, int, oldGalleryDirOption, seed } from '../options.js';
import { withGallery } from '../run.js';

/** `"t0=0.5,w=2"` → one setting of a study */
function parseSetting(v: string, prev: { t0: number; dgWeight: number }[] = []) {
  const m = /^t0=([\d.]+),w=([\d.]+)$/.exec(v.replace(/\s+/g, ''));
  if (!m) throw new InvalidArgumentError(`--setting takes "t0=0.5,w=2", got "${v}"`);
  return [...prev, { t0: Number(m[1]), dgWeight: Number(m[2]) }];
}

export function addStudy(program: Command): void {
  const study = program.command('study').description('blind human studies of realism and faithfulness over gallery results');
  study
    .command('create')
    .description('pair results of two or more settings (same sources and seeds) into a blind study')
    .requiredOption('--name <name>', 'study name')
    .requiredOption('--setting <setting>', 'a setting to compare, e.g. "t0=0.5,w=0"; give two (A/B) or more (a grid)', parseSetting)
    .addOption(
      new Option('--question <q>', 'what annotators judge').choices(['realism', 'faithfulness'] as const).default('realism' as const),
    )
    .option('--seed <n>', 'seed of the order and sides', seed('--seed'), 0)
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .action((o) =>
      withGallery(o.gallery ?? o.dir, (g) => {
        // the same schema as the studio's createStudy: the CLI and the API cannot ask for different things
        const input = { name: o.name, question: o.question, settings: o.setting, seed: o.seed };
        const req = CreateStudySchema.safeParse(input);
        if (!req.success) throw new Error(describeIssues(req.error, input));
        const id = new Studies(g).create(req.data);
        console.log(id);
        console.error(`created study ${id}; annotate it in the studio (Annotate tab)`);
      }),
    );
  study
    .command('export')
    .argument('<id>', 'study id', int('id'))
    .requiredOption('--out <dir>', 'folder for judgements.csv, judgements.json and summary.json')
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .action((id, o) =>
      withGallery(o.gallery ?? o.dir, async (g) => {
        const st = new Studies(g);
        const rows = st.rows(id);
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
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .action((id, o) =>
      withGallery(o.gallery ?? o.dir, async (g) => {
        const spec = { channels: 3 as const, height: 64, width: 64, valueRange: [-1, 1] as const };
        const reference = o.reference ? await Promise.all((await expandInputs(o.reference)).map((f) => readImage(f, spec))) : undefined;
        console.log(JSON.stringify(await new Studies(g).summary(id, reference), null, 2));
      }),
    );
  study
    .command('link')
    .description("a link that lets one annotator judge this study's pairs and nothing else (open it while `serve` runs)")
    .argument('<id>', 'study id', int('id'))
    .requiredOption('--annotator <name>', 'who judges with it (their judgements are recorded under this name)')
    .option('--origin <url>', 'the address `serve` answers on', `http://127.0.0.1:${DEFAULT_PORT}`)
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .action((id, o) =>
      withGallery(o.gallery ?? o.dir, (g) => {
        const { token } = new AnnotatorLinks(g).create(id, o.annotator);
        // the token is shown once: only its digest is kept
        console.log(`${o.origin.replace(/\/+$/, '')}/?a=${encodeURIComponent(token)}`);
        console.error(`a link for "${o.annotator}" (shown only now; revoke it on the Annotate tab)`);
      }),
    );
}
