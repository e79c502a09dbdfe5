import type { GalleryItem, JobDto, ModelEntry, SourceRef, TranslateRequest } from '../../../shared/api';
import { TranslateParamsSchema, type TranslateParams } from '../../../shared/params';
import { api } from './client';

export interface Toast {
  id: number;
  kind: 'error' | 'info';
  text: string;
}

function savedTheme(): 'light' | 'dark' | null {
  try {
    const t = localStorage.getItem('dg-studio.theme');
    return t === 'dark' || t === 'light' ? t : null;
  } catch {
    return null; // storage can be unavailable (privacy modes): the system preference then
  }
}

/** Switch the theme and remember it. */
export function setTheme(theme: 'light' | 'dark'): void {
  studio.theme = theme;
  try {
    localStorage.setItem('dg-studio.theme', theme);
  } catch {
    // not remembered, still switched
  }
}

export const studio = $state({
  tab: 'translate' as 'translate' | 'gallery' | 'sweep' | 'train' | 'annotate' | 'settings',
  /** remembered across reloads; the system's preference the first time */
  theme: savedTheme() ?? ((matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light') as 'light' | 'dark'),
  sources: [] as SourceRef[],
  models: [] as ModelEntry[],
  model: null as string | null,
  discriminator: null as string | null,
  /** classifier guidance: an imported classifier, or null for none */
  classifier: null as string | null,
  /**
   * The score model and discriminator whose recommended t0 / w were last put into the form: a
   * recommendation is applied once, when its model is chosen, never over the user's later changes.
   */
  recommendationsFor: { model: null as string | null, discriminator: null as string | null },
  /**
   * The form's parameters: the schema's defaults (one source for the CLI, the studio and the PNGs), but
   * with w = 1 and w_CG = 1 ready for when a discriminator or a classifier is picked (the schema's 0 means
   * "none"; a discriminator's recommended w replaces the 1 when it is chosen).
   */
  params: { ...TranslateParamsSchema.parse({}), dgWeight: 1, cgWeight: 1 } as TranslateParams,
  jobs: {} as Record<number, JobDto>,
  /**
   * The work a tab shows: kept here, not in the tab, so switching tabs loses nothing; saved in the
   * browser's storage with the source list, so a reload finds its running jobs and results again.
   */
  work: {
    translateJob: null as number | null,
    compareJob: null as number | null,
    lastRun: null as TranslateRequest | null,
    trainJob: null as number | null,
    trainWhat: 'score' as 'score' | 'discriminator',
    /** the Train tab's form (kept across tab switches, reloads and other jobs' runs) */
    train: {
      modelName: 'my-target-model',
      modelSteps: 2000,
      channels: 32,
      patch: 2 as 1 | 2,
      tMax: 0.8,
      precond: 'eps' as 'eps' | 'edm',
      sources: [] as SourceRef[],
      targets: [] as SourceRef[],
      name: 'my-discriminator',
      steps: 200,
      t0Lo: 0.3,
      t0Hi: 0.7,
      /** the target model the discriminator guides (null: the bundled default) */
      model: null as string | null,
      /** a latent target model's settings: the square size images are read at, the fakes' text and CFG */
      imageSize: 512,
      prompt: '',
      negativePrompt: '',
      cfgScale: 1,
      /** the discriminator's design (Advanced): its view (null: the trainer's default), label smoothing, R1 */
      downsample: null as 1 | 2 | 4 | null,
      labelSmoothing: 0.1,
      r1Gamma: 1,
      /** the discriminator whose next round this trains (dg-math §10; null: a new discriminator) */
      refine: null as string | null,
      /** the model whose suggestions were last filled in (once per pick: a reload keeps what you typed) */
      defaultsFor: null as string | null,
    },
    /** the Sweep tab's form, its jobs and reference images (kept across tab switches and reloads) */
    sweep: {
      reference: [] as SourceRef[],
      t0s: '0.3, 0.6',
      /** null until the tab first opens: then plain SDEdit against the Translate tab's DG weight */
      weights: null as string | null,
      job: null as number | null,
      pathsJob: null as number | null,
    },
  },
  toasts: [] as Toast[],
  galleryVersion: 0,
  selected: null as GalleryItem | null,
});

let toastId = 0;
export function toast(text: string, kind: Toast['kind'] = 'error'): void {
  const id = ++toastId;
  studio.toasts.push({ id, kind, text });
  setTimeout(() => (studio.toasts = studio.toasts.filter((t) => t.id !== id)), kind === 'error' ? 9000 : 4000);
}

/** Add images to the back end's inbox; every refused image and any failure becomes a toast. */
async function intoInbox(
  request: () => Promise<{ sources: SourceRef[]; errors: { message: string }[] }>,
  advice: string,
): Promise<SourceRef[]> {
  try {
    const r = await request();
    for (const e of r.errors) toast(`${e.message}${advice}`);
    return r.sources;
  } catch (e) {
    toast((e as Error).message);
    return [];
  }
}

/** Read picked or dropped files as bytes and add them to the back end's inbox. */
export async function addFiles(files: File[]): Promise<SourceRef[]> {
  if (files.length === 0) return [];
  const payload = await Promise.all(files.map(async (f) => ({ name: f.name, data: new Uint8Array(await f.arrayBuffer()) })));
  return intoInbox(() => api.addSources({ files: payload }), '. Use a PNG, JPEG, WebP, GIF, TIFF or AVIF image.');
}

/** The bundled sample images, through the same inbox. */
export function addSamples(): Promise<SourceRef[]> {
  return intoInbox(() => api.addSamples(), '');
}

const SAVED = 'dg-studio.work';

/** The source list and the tabs' jobs as saved by the last page (null when none or unreadable). */
function savedWork(): { sources: SourceRef[]; work: typeof studio.work } | null {
  try {
    const raw = JSON.parse(localStorage.getItem(SAVED) ?? 'null') as { sources?: unknown; work?: unknown } | null;
    if (!raw || !Array.isArray(raw.sources) || typeof raw.work !== 'object' || raw.work === null) return null;
    // one level deep: a form saved by an older studio keeps the fields added since at their defaults
    const work: Record<string, unknown> = { ...studio.work };
    for (const [k, v] of Object.entries(raw.work as Record<string, unknown>)) {
      const now = work[k];
      const isForm = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x);
      work[k] = isForm(now) && isForm(v) ? { ...(now as object), ...(v as object) } : v;
    }
    return { sources: raw.sources as SourceRef[], work: work as typeof studio.work };
  } catch {
    return null;
  }
}

export async function startup(): Promise<void> {
  // restore what the last page had, keeping only jobs the back end still knows
  const saved = savedWork();
  try {
    for (const j of await api.listJobs()) studio.jobs[j.id] = j;
  } catch {
    // no job list: start with none
  }
  if (saved) {
    studio.sources = saved.sources;
    const known = (id: number | null) => (id !== null && studio.jobs[id] ? id : null);
    studio.work = {
      ...saved.work,
      translateJob: known(saved.work.translateJob),
      compareJob: known(saved.work.compareJob),
      trainJob: known(saved.work.trainJob),
    };
  }
  $effect.root(() => {
    $effect(() => {
      const snapshot = JSON.stringify({ sources: studio.sources, work: studio.work });
      try {
        localStorage.setItem(SAVED, snapshot);
      } catch {
        // storage unavailable: nothing is remembered, nothing breaks
      }
    });
  });
  api.onEvent((e) => {
    if (e.type === 'job') {
      studio.jobs[e.job.id] = e.job;
      if (e.job.state === 'failed') toast(`${e.job.label}: ${e.job.error}`);
    } else studio.galleryVersion++;
  });
  try {
    studio.models = await api.listModels();
  } catch (e) {
    toast(`cannot list models: ${(e as Error).message}`);
  }
}

/** Files of a drop, folders included (walked through the entries API). */
export async function droppedFiles(dt: DataTransfer | null): Promise<File[]> {
  if (!dt) return [];
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (entries.length === 0) return [...dt.files];
  const out: File[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) out.push(await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej)));
    else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out.filter((f) => /\.(png|jpe?g|webp|gif|tiff?|avif)$/i.test(f.name));
}
