/**
 * The models the studio lists: the bundled defaults and what the user imported or trained under the
 * data folder (models/, score-models/, discriminators/). Each manifest is read through the shared
 * `parseManifest`, the same check every loader applies; one that fails it is still listed, with its
 * problem, so the user sees why it cannot be used.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ApiParsedArgs, ManifestProposal, ModelEntry } from '../../shared/api.js';
import { parseManifest } from '../../shared/manifest.js';
import { writeFileAtomic } from '../engine/io/image-io.js';
import { isDiffusersFolder, latentModelName, readDiffusersFolder } from '../engine/models/diffusers-folder.js';
import { readJsonFile } from '../engine/models/score-model.js';
import type { ExecutionProvider } from '../engine/onnx/session.js';
import { fileInside } from '../services/folders.js';
import { checkManifest, inspectOnnxFile } from '../services/inspect-model.js';
import { sha256File } from '../services/translate-files.js';
import { bundledDefaults } from '../services/resources.js';

export type RegistryEntry = ModelEntry & { manifest: string };
export interface SessionChoice {
  executionProvider: ExecutionProvider;
  threads: number | undefined;
}

/** A manifest's training record, cut to the scalar facts a model card shows. */
function trainingSummary(t: unknown): Record<string, string | number> | null {
  if (typeof t !== 'object' || t === null) return null;
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(t)) if (typeof v === 'number' || (typeof v === 'string' && v.length < 80)) out[k] = v;
  return Object.keys(out).length ? out : null;
}

const KIND_WORDS: Record<ModelEntry['kind'], string> = { score: 'score model', discriminator: 'discriminator', classifier: 'classifier' };

/** Kinds by manifest format, for listing a manifest that fails its check (score otherwise). */
const KIND_OF_FORMAT: Record<string, ModelEntry['kind']> = {
  'dg-studio/discriminator@1': 'discriminator',
  'dg-studio/classifier@1': 'classifier',
};

/**
 * The card of one manifest file; null when the file is not even JSON (skipped: reported when used). A manifest
 * that fails its check is listed as the kind its `format` names, else as `folderKind` (what its folder holds).
 */
async function entryOf(manifest: string, folderKind: ModelEntry['kind'], bundled: boolean, id: string): Promise<RegistryEntry | null> {
  const raw = (await readJsonFile(manifest, 'manifest').catch(() => null)) as Record<string, unknown> | null;
  if (raw === null || typeof raw !== 'object') return null;
  const parsed = parseManifest(manifest, raw);
  const fallbackKind = KIND_OF_FORMAT[String(raw['format'])] ?? folderKind;
  const base = {
    id,
    bundled,
    manifest,
    name: typeof raw['name'] === 'string' && raw['name'] ? raw['name'] : id,
    description: typeof raw['description'] === 'string' ? raw['description'] : '',
  };
  if (!parsed.ok) return { ...base, kind: fallbackKind, problem: parsed.error };
  const m = parsed.manifest as Record<string, unknown> & { training?: unknown };
  const training = trainingSummary(m.training);
  const pick = <T>(key: string, ok: (v: unknown) => boolean) => (ok(m[key]) ? { [key]: m[key] as T } : {});
  const warning = cardWarning(parsed.kind, m.training);
  const record = m.training as { validation?: { accuracy?: unknown }; latentModel?: { folder?: unknown } } | undefined;
  const accuracy = record?.validation?.accuracy;
  const latentModel = record?.latentModel?.folder;
  return {
    ...base,
    kind: parsed.kind,
    ...(parsed.kind === 'discriminator' && typeof accuracy === 'number' ? { validationAccuracy: accuracy } : {}),
    ...(parsed.kind === 'discriminator' && typeof latentModel === 'string' ? { latentModel } : {}),
    ...(warning ? { warning } : {}),
    ...pick<string[]>('classes', Array.isArray),
    ...(parsed.kind === 'score' ? pick<[number, number]>('validTimeRange', Array.isArray) : {}),
    ...pick<number[]>('dataShape', Array.isArray),
    ...pick<string>('license', (v) => typeof v === 'string'),
    ...(parsed.kind === 'discriminator' ? pick<number>('recommendedWeight', (v) => typeof v === 'number') : {}),
    ...(parsed.kind === 'score' ? pick<number>('recommendedT0', (v) => typeof v === 'number') : {}),
    ...(parsed.kind === 'score' ? pick<number>('recommendedSigmaMin', (v) => typeof v === 'number') : {}),
    ...(training ? { training } : {}),
  };
}

/** Below this held-out accuracy a discriminator's card says it barely beats chance. */
export const WEAK_DISCRIMINATOR_ACCURACY = 0.55;

/** What a model's card should warn of, from its training record (null: nothing). */
export function cardWarning(kind: ModelEntry['kind'], training: unknown): string | null {
  const t = (training ?? {}) as {
    steps?: unknown;
    cancelled?: unknown;
    denoisingCheck?: { passed?: unknown; ratios?: Record<string, number> };
    validation?: { accuracy?: unknown };
  };
  if (kind === 'score' && t.denoisingCheck?.passed === false) {
    const ratios = Object.entries(t.denoisingCheck.ratios ?? {})
      .map(([t0, r]) => `${r.toFixed(2)} at t0 ${t0}`)
      .join(', ');
    return `does not yet denoise better than a per-pixel linear baseline (${ratios}; below 0.9 is needed): it would translate into noise — train it longer`;
  }
  if (kind === 'score' && t.cancelled === true) return `stopped early (at step ${String(t.steps)}): check its preview before relying on it`;
  const acc = t.validation?.accuracy;
  if (kind === 'discriminator' && typeof acc === 'number' && acc < WEAK_DISCRIMINATOR_ACCURACY)
    return `barely tells target from source (validation accuracy ${acc.toFixed(2)}; 0.5 is chance): its guidance adds little but noise at small weights`;
  return null;
}

/** The card of a Stable Diffusion-family folder (diffusers' ONNX layout); its problem, if it cannot be read, in words. */
function latentEntryOf(dir: string, id: string): RegistryEntry {
  const base = { id, kind: 'score' as const, bundled: false, manifest: dir, name: latentModelName(dir), latent: true };
  try {
    const f = readDiffusersFolder(dir);
    const { name: _own, recommendedT0, ...latentDefaults } = f.defaults;
    return {
      ...base,
      name: latentModelName(dir, f.defaults),
      description: `${f.pipeline}, ${f.scheduler.prediction_type === 'v_prediction' ? 'v' : 'ε'}-prediction, ${f.scheduler.timestep_spacing} timesteps`,
      recommendedT0: recommendedT0 ?? 0.6,
      ...(Object.keys(latentDefaults).length ? { latentDefaults } : {}),
    };
  } catch (e) {
    return { ...base, description: '', problem: (e as Error).message };
  }
}

/** Diffusers folders: `dir` itself, or its subfolders that are. */
async function diffusersFoldersIn(dir: string): Promise<string[]> {
  if (isDiffusersFolder(dir)) return [dir];
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .sort()
    .map((n) => join(dir, n))
    .filter(isDiffusersFolder);
}

export class ModelRegistry {
  /** `extraFolders`: the settings' model folders, read at each listing */
  constructor(
    private readonly home: string,
    private readonly extraFolders: () => string[] = () => [],
  ) {}

  /** Every model, bundled first, then imported, trained score models and trained discriminators. */
  async entries(): Promise<RegistryEntry[]> {
    const d = bundledDefaults();
    const found: (RegistryEntry | null)[] = [await entryOf(d.scoreModel, 'score', true, 'bundled:score')];
    if (d.discriminator) found.push(await entryOf(d.discriminator, 'discriminator', true, 'bundled:discriminator'));
    const folder = async (sub: string, idPrefix: string, kind: ModelEntry['kind']) => {
      const dir = join(this.home, sub);
      for (const name of existsSync(dir) ? (await readdir(dir)).sort() : []) {
        const manifest = join(dir, name, 'manifest.json');
        if (existsSync(manifest)) found.push(await entryOf(manifest, kind, false, `${idPrefix}:${name}`));
        else if (kind === 'score' && isDiffusersFolder(join(dir, name))) found.push(latentEntryOf(join(dir, name), `${idPrefix}:${name}`));
      }
    };
    await folder('models', 'imported', 'score');
    await folder('score-models', 'trained-score', 'score');
    await folder('discriminators', 'trained', 'discriminator');
    for (const [k, extra] of this.extraFolders().entries())
      for (const dir of await diffusersFoldersIn(extra)) found.push(latentEntryOf(dir, `folder${k}:${basename(dir)}`));
    return found.filter((e): e is RegistryEntry => e !== null);
  }

  /** What the renderer sees: the entries without their file paths. */
  async list(): Promise<ModelEntry[]> {
    return (await this.entries()).map(({ manifest: _m, ...e }) => e);
  }

  /** The manifest path of model `id` of this kind (null: the bundled one, which may not exist). */
  async manifestOf(id: string | null, kind: ModelEntry['kind']): Promise<string | undefined> {
    const list = await this.entries();
    if (id === null) return list.find((e) => e.kind === kind && e.bundled)?.manifest;
    const e = list.find((x) => x.id === id && x.kind === kind);
    if (!e) throw new Error(`no ${kind === 'score' ? 'score model' : kind} "${id}"; pick one from the list`);
    return e.manifest;
  }

  /** Remove a model the user imported or trained (never a bundled one): its folder under the data folder. */
  async delete(id: string): Promise<boolean> {
    const e = (await this.entries()).find((x) => x.id === id);
    if (!e) throw new Error(`no model "${id}"; pick one from the list`);
    if (e.bundled) throw new Error(`"${e.name}" is bundled with DG Studio and cannot be deleted`);
    const folder = e.latent ? e.manifest : dirname(e.manifest);
    // only folders the studio made: models/, score-models/, discriminators/ under its data folder
    const parents = ['models', 'score-models', 'discriminators'].map((d) => join(this.home, d));
    if (!parents.includes(dirname(folder))) throw new Error(`"${e.name}" is not in the studio's data folder; remove it by hand`);
    await rm(folder, { recursive: true, force: true });
    return true;
  }

  /** Import a model: its manifest (one .json) and the files it names; validated by loading it. */
  async import(req: ApiParsedArgs<'importModel'>[0], session: SessionChoice): Promise<ModelEntry> {
    const manifests = req.files.filter((f) => f.name.toLowerCase().endsWith('.json'));
    if (manifests.length !== 1) throw new Error(`give exactly one manifest (.json) with the model's files; got ${manifests.length}`);
    let slug = '';
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(new TextDecoder().decode(manifests[0]!.data)) as Record<string, unknown>;
      slug = (typeof raw['name'] === 'string' ? raw['name'] : 'model').replace(/[^\w.-]+/g, '-').slice(0, 60) || 'model';
    } catch (e) {
      throw new Error(`cannot read manifest "${manifests[0]!.name}": not valid JSON (${(e as Error).message})`, { cause: e });
    }
    // the wrong kind chosen: said in words, not as the other kind's schema errors
    const parsed = parseManifest(manifests[0]!.name, raw);
    const actual = parsed.ok ? parsed.kind : KIND_OF_FORMAT[String(raw['format'])];
    if (actual && actual !== req.kind)
      throw new Error(
        `"${manifests[0]!.name}" is a ${KIND_WORDS[actual]} manifest, not a ${KIND_WORDS[req.kind]} one: choose "${KIND_WORDS[actual]}" as the kind`,
      );
    const dir = join(this.home, 'models', slug);
    if (existsSync(dir)) throw new Error(`a model named "${slug}" is already imported; rename it in its manifest`);
    const twin = await this.sameModel(manifests[0]!.data, req.files);
    if (twin) throw new Error(`this model is already in the list as "${twin.name}" (the same network file and settings)`);
    await mkdir(dir, { recursive: true });
    try {
      for (const f of req.files) await writeFileAtomic(fileInside(dir, f === manifests[0] ? 'manifest.json' : f.name), f.data);
      await checkManifest(join(dir, 'manifest.json'), req.kind, session);
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw new Error((e as Error).message.replaceAll(dir + '/', ''), { cause: e });
    }
    const entry = (await this.list()).find((m) => m.id === `imported:${slug}`);
    if (!entry) throw new Error(`imported "${slug}" but cannot list it`);
    return entry;
  }

  /**
   * A listed model an upload duplicates: the same network file (sha256 of its bytes) and the same manifest
   * apart from its name and description (importing the bundled model again, or one twice). Null when none.
   */
  private async sameModel(manifestBytes: Uint8Array, files: { name: string; data: Uint8Array }[]): Promise<RegistryEntry | null> {
    // the manifest without its name and description, keys sorted at every level
    const canonical = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(canonical)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.keys(v)
                .sort()
                .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
            )
          : v;
    const key = (m: Record<string, unknown>) => {
      const { name: _n, description: _d, ...rest } = m;
      return JSON.stringify(canonical(rest));
    };
    let manifest: Record<string, unknown>;
    try {
      manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as Record<string, unknown>;
    } catch {
      return null; // reported by the caller
    }
    const onnxName = typeof manifest['onnx'] === 'string' ? manifest['onnx'] : null;
    const upload = files.find((f) => f.name === onnxName);
    if (!upload) return null;
    const digest = createHash('sha256').update(upload.data).digest('hex');
    for (const e of await this.entries()) {
      const m = (await readJsonFile(e.manifest, 'manifest').catch(() => null)) as Record<string, unknown> | null;
      if (!m || typeof m['onnx'] !== 'string' || key(m) !== key(manifest)) continue;
      const onnx = join(dirname(e.manifest), m['onnx']);
      if (existsSync(onnx) && (await sha256File(onnx)) === digest) return e;
    }
    return null;
  }

  /** Inspect an uploaded ONNX file in a scratch folder (removed after) and return the checked proposal. */
  async propose(req: ApiParsedArgs<'proposeManifest'>[0], session: SessionChoice): Promise<ManifestProposal> {
    const scratch = join(this.home, 'tmp', `inspect-${randomBytes(6).toString('hex')}`);
    await mkdir(scratch, { recursive: true });
    try {
      const onnx = fileInside(scratch, req.file.name);
      await writeFileAtomic(onnx, req.file.data);
      const r = await inspectOnnxFile(onnx, { kind: req.kind }, session);
      const strip = (t: string) => t.replaceAll(scratch + '/', '').replaceAll(scratch, '');
      return {
        kind: r.inspection.kind,
        kindWhy: r.inspection.kindWhy,
        manifest: JSON.stringify(r.inspection.manifest, null, 2),
        guesses: r.inspection.guesses,
        inputs: r.inspection.inputs,
        outputs: r.inspection.outputs,
        problem: r.problem === null ? null : strip(r.problem),
        warnings: r.warnings.map(strip),
      };
    } catch (e) {
      throw new Error(
        `cannot inspect "${req.file.name}": ${(e as Error).message.replaceAll(scratch + '/', '').replace(/^"[^"]*": /, '')}`,
        { cause: e },
      );
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
}
