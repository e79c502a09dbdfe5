/**
 * The outputs of a translation run: each written once (an output never overwrites: freeName), as a PNG with
 * its parameters embedded (A1111's line and a shareable record without paths), a gallery row and a JSON
 * sidecar; a batch's sources read with per-file errors; on resume, outputs a crash left without their
 * gallery row adopted instead of translated again. Used by translateFiles (translate-files.ts).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { formatParametersLine, type TranslateParams } from '../../shared/params.js';
import { ENGINE_VERSION } from '../../shared/version.js';
import {
  encodePixelsPng,
  readImageAndBytes,
  readPngTextFromBuffer,
  restoreAspect,
  writeFileAtomic,
  type FitGeometry,
  type ImageSpec,
} from '../engine/io/image-io.js';
import { safeFileStem } from './folders.js';
import type { Gallery } from './gallery.js';
import { sha256Hex, type TranslateEvents, type TranslateFilesRequest } from './translate-files.js';

/** A model as an output records it: its name, manifest path and the sha256 of its file. */
export interface ModelInfo {
  name: string;
  manifest: string;
  sha256: string;
}

export interface OutputRecord {
  galleryId?: number;
  runId?: number | undefined;
  source: string;
  output: string;
  sidecar: string;
  seed: number;
  params: TranslateParams;
  model: ModelInfo;
  discriminator: ModelInfo | null;
  classifier?: (ModelInfo & { className: string }) | null;
  engineVersion: string;
  createdAt: string;
}

export interface FileError {
  file: string;
  message: string;
}

/**
 * What an output carries about itself (PNG chunk, sidecar): names and digests, never a path — a
 * shared PNG must not tell where the user keeps files; the gallery keeps where they are.
 */
export function shareableRecord(r: OutputRecord, sourceName: string, sourceSha256: string) {
  const named = <T extends { manifest: string }>(m: T) => {
    const { manifest: _where, ...rest } = m;
    return rest;
  };
  return {
    source: sourceName,
    sourceSha256,
    output: basename(r.output),
    seed: r.seed,
    params: r.params,
    model: named(r.model),
    discriminator: r.discriminator ? named(r.discriminator) : null,
    ...(r.classifier ? { classifier: named(r.classifier) } : {}),
    engineVersion: r.engineVersion,
    createdAt: r.createdAt,
  };
}

/** The first of stem.png, stem-1.png, … that is neither on disk nor `taken` by this run: an output never overwrites. */
export async function freeName(dir: string, stem: string, taken: Set<string>): Promise<string> {
  for (let k = 0; ; k++) {
    const name = k === 0 ? `${stem}.png` : `${stem}-${k}.png`;
    if (taken.has(name)) continue;
    try {
      await stat(join(dir, name));
    } catch {
      taken.add(name);
      return name;
    }
  }
}

/** What writing one output needs of its run. */
export interface OutputContext {
  req: TranslateFilesRequest;
  params: TranslateParams;
  spec: ImageSpec;
  modelInfo: ModelInfo;
  discInfo: ModelInfo | null;
  classifierInfo: (ModelInfo & { className: string }) | null;
  gallery: Gallery | undefined;
  runId: number | undefined;
  /** output names given in this run */
  taken: Set<string>;
  events: TranslateEvents;
}
export interface LoadedSource {
  file: string;
  index: number;
  sha256: string;
  /** where the image lies in the model's frame (params.fit), to bring the output back to its aspect */
  geometry: FitGeometry;
}

/** An output's record and the PNG's parameter texts (A1111's line and the full record), before its file is named. */
function describeOutput(o: OutputContext, l: LoadedSource, seed: number) {
  const sourceName = o.req.sourceNames?.[l.file] ?? basename(l.file);
  const record: OutputRecord = {
    runId: o.runId,
    source: resolve(l.file),
    output: '',
    sidecar: '',
    seed,
    params: { ...o.params, seed },
    model: o.modelInfo,
    discriminator: o.discInfo,
    ...(o.classifierInfo ? { classifier: o.classifierInfo } : {}),
    engineVersion: ENGINE_VERSION,
    createdAt: new Date().toISOString(),
  };
  // bounded and sanitised: a long non-ASCII name must not fail the batch (ENAMETOOLONG)
  const inputStem = safeFileStem(basename(sourceName, extname(sourceName)));
  const stem = o.req.keepNames ? inputStem : `${inputStem}-t${o.params.t0}-w${o.params.dgWeight}-${seed}`;
  return { record, sourceName, stem };
}

/** Write one output: the PNG (atomically), its gallery row, then its sidecar. */
export async function saveOutput(o: OutputContext, l: LoadedSource, seed: number, pixels: Float32Array): Promise<OutputRecord> {
  const { record, sourceName, stem } = describeOutput(o, l, seed);
  const name = await freeName(o.req.outDir, stem, o.taken);
  if (o.req.keepNames && name !== `${stem}.png`)
    o.events.onWarning?.(`"${stem}.png" is taken in ${o.req.outDir} (an earlier run or another input of that name): ${l.file} → ${name}`);
  record.output = join(resolve(o.req.outDir), name);
  record.sidecar = record.output.replace(/\.png$/, '.json');
  const { modelInfo, discInfo, classifierInfo } = o;
  const line = formatParametersLine(record.params, {
    Model: modelInfo.name,
    'Model hash': modelInfo.sha256.slice(0, 10),
    ...(discInfo ? { Discriminator: discInfo.name, 'Discriminator hash': discInfo.sha256.slice(0, 10) } : {}),
    ...(classifierInfo
      ? { Classifier: classifierInfo.name, 'Classifier hash': classifierInfo.sha256.slice(0, 10), 'Class name': classifierInfo.className }
      : {}),
    Size: `${o.spec.width}x${o.spec.height}`,
    Version: `dg-studio ${ENGINE_VERSION}`,
  });
  const embedded = shareableRecord(record, sourceName, l.sha256);
  const out = await restoreAspect(pixels, o.spec, l.geometry, o.params.outputSize === 'source');
  const png = await encodePixelsPng(
    out.pixels,
    { width: out.width, height: out.height, channels: o.spec.channels },
    { parameters: `Source: ${sourceName}\n${line}`, 'dg-studio': JSON.stringify(embedded) },
  );
  await writeFileAtomic(record.output, png);
  return recordOutput(o, record, sourceName, png, embedded);
}

/** The gallery row and the sidecar of an output whose PNG is written. */
async function recordOutput(o: OutputContext, record: OutputRecord, sourceName: string, png: Uint8Array, embedded: object) {
  if (o.gallery && o.runId !== undefined)
    record.galleryId = await o.gallery.addOutput(o.runId, { png, sourcePath: record.source, sourceName, seed: record.seed });
  await writeFileAtomic(record.sidecar, JSON.stringify({ ...embedded, galleryId: record.galleryId, runId: o.runId }, null, 2));
  return record;
}

/** What an output's PNG records of itself (its `dg-studio` text). */
export interface EmbeddedRecord {
  sourceSha256?: string;
  seed?: number;
  params?: unknown;
  source?: string;
}

/** Two records of the same output: the same source bytes and name, seed and parameters (not the time it was made). */
export function sameOutput(a: EmbeddedRecord, b: EmbeddedRecord): boolean {
  return (
    a.sourceSha256 === b.sourceSha256 && a.seed === b.seed && a.source === b.source && JSON.stringify(a.params) === JSON.stringify(b.params)
  );
}

/**
 * On resume: the output of this source a crash left on disk without its gallery row (the PNG is written
 * before the row), recognised by what its PNG records — the same source bytes, seed and parameters — and
 * adopted instead of translated again and written a second time under another name. Null when there is none.
 */
async function adoptOutput(o: OutputContext, l: LoadedSource, seed: number): Promise<OutputRecord | null> {
  const { record, sourceName, stem } = describeOutput(o, l, seed);
  const path = join(resolve(o.req.outDir), `${stem}.png`);
  let png: Buffer;
  let embedded: EmbeddedRecord;
  try {
    png = await readFile(path);
    embedded = JSON.parse(readPngTextFromBuffer(png)['dg-studio'] ?? 'null') ?? {};
  } catch {
    return null;
  }
  if (!sameOutput(embedded, { sourceSha256: l.sha256, seed, source: sourceName, params: record.params })) return null;
  o.taken.add(`${stem}.png`);
  record.output = path;
  record.sidecar = path.replace(/\.png$/, '.json');
  return recordOutput(o, record, sourceName, png, embedded);
}

/**
 * A batch's sources read for the model (an unreadable one recorded as an error, the run going on); on resume,
 * outputs a crash left without their gallery row adopted instead of translated again. `settled`: how many of
 * the batch need no translation (errors and adoptions).
 */
export async function readBatch(
  o: OutputContext,
  batch: { file: string; index: number }[],
  outputs: OutputRecord[],
  errors: FileError[],
): Promise<{ loaded: (LoadedSource & { data: Float32Array })[]; settled: number }> {
  const { req, params, gallery, runId, events } = o;
  const loaded: (LoadedSource & { data: Float32Array })[] = [];
  let settled = 0;
  for (const { file, index } of batch) {
    try {
      const { data, bytes, geometry } = await readImageAndBytes(file, o.spec, params.fit);
      loaded.push({ file, index, data, sha256: sha256Hex(bytes), geometry });
    } catch (e) {
      const err = { file, message: (e as Error).message };
      errors.push(err);
      if (gallery && runId !== undefined)
        gallery.addError(runId, resolve(file), (params.seed + index) % 2 ** 32, err.message, req.sourceNames?.[file]);
      events.onError?.(err);
      settled++;
    }
  }
  if (req.resumeRunId === undefined) return { loaded, settled };
  // a resumed run adopts the outputs a crash left without their gallery row (written, then killed)
  const fresh: (LoadedSource & { data: Float32Array })[] = [];
  for (const l of loaded) {
    const adopted = await adoptOutput(o, l, (params.seed + l.index) % 2 ** 32);
    if (!adopted) {
      fresh.push(l);
      continue;
    }
    outputs.push(adopted);
    events.onResult?.(adopted);
    settled++;
  }
  return { loaded: fresh, settled };
}
