/** `dg-studio gallery list|show|export|reuse|delete`: the SQLite-indexed gallery of results. */
import type { Command } from '@commander-js/extra-typings';
import { parametersFromPng } from '../../services/gallery.js';
import { galleryOption, int, nonNegative, oldGalleryDirOption, pair, positiveInt } from '../options.js';
import { withGallery } from '../run.js';

/** comma-separated ids, repeatable */
const ids = (v: string, prev: number[] = []) => [...prev, ...v.split(',').map(int('id'))];

function galleryList(gallery: Command) {
  gallery
    .command('list')
    .description('newest results first, filtered')
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .option('--model <name>', 'score model name')
    .option('--t0 <lo,hi>', 't0 range', pair('--t0'))
    .option('--dg-weight <w>', 'DG weight', nonNegative('--dg-weight'))
    .option('--tag <tag>', 'tag')
    .option('--text <text>', 'text in notes, source paths, model names')
    .option('--favourites', 'favourites only')
    .option('--errors', 'include failed images')
    .option('--limit <n>', 'rows', positiveInt('--limit'), 50)
    .option('--json', 'JSON lines')
    .action((o) =>
      withGallery(o.gallery ?? o.dir, (g) => {
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
}

function galleryShow(gallery: Command) {
  gallery
    .command('show')
    .argument('<id>', 'output id', int('id'))
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .action((id, o) =>
      withGallery(o.gallery ?? o.dir, (g) => {
        const r = g.get(id);
        if (!r) throw new Error(`the gallery has no output ${id}`);
        console.log(JSON.stringify({ ...r, file: r.sha256 ? g.objectPath(r.sha256) : null }, null, 2));
      }),
    );
}

function galleryExport(gallery: Command) {
  gallery
    .command('export')
    .argument('<ids>', 'comma-separated output ids', ids)
    .requiredOption('--out <dir>', 'folder')
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .action((list, o) =>
      withGallery(o.gallery ?? o.dir, async (g) => {
        const files = await g.export(list, o.out);
        console.error(`exported ${files.length} image(s) with JSON sidecars to ${o.out}`);
      }),
    );
}

function galleryReuse(gallery: Command) {
  gallery
    .command('reuse')
    .description('print the parameters of an output (by id, or from a PNG the studio wrote) as translate options')
    .argument('<idOrPng>', 'output id or PNG path')
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .option('--json', 'as JSON')
    .action((what, o) =>
      withGallery(o.gallery ?? o.dir, async (g) => {
        const p = /^\d+$/.test(what) ? g.get(Number(what))?.params : await parametersFromPng(what);
        if (!p) throw new Error(`the gallery has no output ${what}`);
        if (o.json) console.log(JSON.stringify(p));
        else
          console.log(
            `--t0 ${p.t0} --dg-weight ${p.dgWeight}${p.dgWeight2 === null ? '' : ` --dg-weight2 ${p.dgWeight2}`} --dg-window ${p.dgWindow.join(',')} --steps ${p.steps} --sampler ${p.sampler} --seed ${p.seed} --eta ${p.eta} --churn ${p.churn} --spacing ${p.spacing}${p.sigmaMin === null ? '' : ` --sigma-min ${p.sigmaMin}`}`,
          );
      }),
    );
}

function galleryDelete(gallery: Command) {
  gallery
    .command('delete')
    .argument('<ids>', 'comma-separated output ids', ids)
    .addOption(galleryOption())
    .addOption(oldGalleryDirOption())
    .action((list, o) =>
      withGallery(o.gallery ?? o.dir, async (g) => {
        console.error(`deleted ${await g.delete(list)} output(s)`);
      }),
    );
}

export function addGallery(program: Command): void {
  const gallery = program.command('gallery').description('the SQLite-indexed gallery of results');
  galleryList(gallery);
  galleryShow(gallery);
  galleryExport(gallery);
  galleryReuse(gallery);
  galleryDelete(gallery);
}
