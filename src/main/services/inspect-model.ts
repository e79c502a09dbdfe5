/**
 * Propose a manifest for an ONNX file and prove it works: the engine's guesses (engine/inspect.ts),
 * then the same load-time checks and dry run every job does. Used by `dg-studio inspect` and by the
 * studio's import of a bare .onnx file.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkClassifier } from '../engine/models/classifier.js';
import { loadDiscriminator } from '../engine/models/discriminator.js';
import { inspectModel, InspectError, type Inspection, type InspectOptions } from '../engine/models/inspect.js';
import { parseModel } from '../engine/onnx/ir.js';
import type { SessionOptions } from '../engine/onnx/session.js';
import { loadScoreModel } from '../engine/models/score-model.js';

export interface CheckedProposal {
  inspection: Inspection;
  /** null: the proposal loaded and ran on a tiny batch; else why not */
  problem: string | null;
  /** warnings the load raised (disagreeing dtypes, old spellings, …) */
  warnings: string[];
}

/** Load a manifest of any kind with the checks a job would run, and release it. */
export async function checkManifest(manifestPath: string, kind: Inspection['kind'], session: SessionOptions = {}): Promise<void> {
  if (kind === 'score') await (await loadScoreModel(manifestPath, session)).dispose();
  // class 0 for the dry run: a class-conditional discriminator needs one, any other ignores it
  else if (kind === 'discriminator') await (await loadDiscriminator(manifestPath, undefined, session, 0)).dispose();
  else await checkClassifier(manifestPath, session);
}

/**
 * Inspect `onnxPath` and validate the proposal by loading it from a temporary manifest beside the
 * file (manifests may only name files in their own folder); the temporary file is always removed.
 */
export async function inspectOnnxFile(
  onnxPath: string,
  opts: Omit<InspectOptions, 'onnxName'> = {},
  session: SessionOptions = {},
): Promise<CheckedProposal> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(onnxPath);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message;
    throw new Error(`cannot read "${onnxPath}": ${why}`, { cause: e });
  }
  let inspection: Inspection;
  try {
    inspection = inspectModel(parseModel(bytes, onnxPath), { ...opts, onnxName: basename(onnxPath) });
  } catch (e) {
    if (e instanceof InspectError) throw new Error(`"${onnxPath}": ${e.message}`, { cause: e });
    throw e;
  }
  const warnings: string[] = [];
  const tmp = join(dirname(onnxPath), `.inspect-${randomBytes(6).toString('hex')}.json`);
  let problem: string | null = null;
  try {
    await writeFile(tmp, JSON.stringify(inspection.manifest, null, 2));
    await checkManifest(tmp, inspection.kind, { ...session, onWarning: (w) => warnings.push(w) });
  } catch (e) {
    problem = (e as Error).message.replaceAll(tmp, 'the proposed manifest');
  } finally {
    await rm(tmp, { force: true });
  }
  return { inspection, problem, warnings: warnings.map((w) => w.replaceAll(tmp, 'the proposed manifest')) };
}
