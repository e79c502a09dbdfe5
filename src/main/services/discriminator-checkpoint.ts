/**
 * A discriminator run's checkpoint: `checkpoint.safetensors` in the run folder — the same format as the
 * score model's (weights under `model.`, Adam moments under `adam_m.` / `adam_v.`, the step counts in
 * the metadata), written atomically. Runs made before it kept `checkpoint/state.json` + `state.bin`;
 * those are still read (the next save writes the new file beside them, the old files are left alone).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../engine/io/image-io.js';
import { decodeSafetensors, encodeSafetensors, type StTensor } from '../engine/io/safetensors.js';
import type { Checkpoint } from '../engine/train/discriminator-trainer.js';

export const DISCRIMINATOR_CHECKPOINT = 'checkpoint.safetensors';
const FORMAT = 'dg-studio/discriminator-checkpoint@1';

export async function saveDiscriminatorCheckpoint(runDir: string, c: Checkpoint): Promise<void> {
  await mkdir(runDir, { recursive: true });
  const tensors = new Map<string, StTensor>();
  const put = (prefix: string, src: Record<string, Float32Array>) => {
    for (const [k, v] of Object.entries(src)) tensors.set(`${prefix}.${k}`, { dtype: 'F32', shape: [v.length], data: v });
  };
  put('model', c.params);
  put('adam_m', c.adam.m);
  put('adam_v', c.adam.v);
  const metadata = { format: FORMAT, trainer: 'dg-studio train-discriminator', step: String(c.step), adam_step: String(c.adam.step) };
  await writeFileAtomic(join(runDir, DISCRIMINATOR_CHECKPOINT), new Uint8Array(encodeSafetensors({ tensors, metadata })));
}

/** The run's checkpoint (either format), or null when it has none. A damaged file is an error that names it. */
export async function loadDiscriminatorCheckpoint(runDir: string): Promise<Checkpoint | null> {
  const path = join(runDir, DISCRIMINATOR_CHECKPOINT);
  if (existsSync(path)) {
    const file = decodeSafetensors(await readFile(path), path);
    if (file.metadata['format'] !== FORMAT)
      throw new Error(`${path}: not a discriminator checkpoint (format "${file.metadata['format']}")`);
    const c: Checkpoint = {
      step: Number(file.metadata['step']),
      params: {},
      adam: { step: Number(file.metadata['adam_step']), m: {}, v: {} },
    };
    for (const [name, t] of file.tensors) {
      const dot = name.indexOf('.');
      const [prefix, key] = [name.slice(0, dot), name.slice(dot + 1)];
      const into = prefix === 'model' ? c.params : prefix === 'adam_m' ? c.adam.m : prefix === 'adam_v' ? c.adam.v : null;
      if (into) into[key] = t.data;
    }
    return c;
  }
  return loadOldCheckpoint(join(runDir, 'checkpoint'));
}

/** The format of runs before the safetensors one: state.json (step, offsets) + state.bin (float32). */
async function loadOldCheckpoint(dir: string): Promise<Checkpoint | null> {
  if (!existsSync(join(dir, 'state.json'))) return null;
  const meta = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as {
    step: number;
    adamStep: number;
    index: Record<string, [number, number]>;
  };
  const buf = await readFile(join(dir, 'state.bin'));
  const bin = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const c: Checkpoint = { step: meta.step, params: {}, adam: { step: meta.adamStep, m: {}, v: {} } };
  for (const [key, [off, len]] of Object.entries(meta.index)) {
    const [kind, name] = [key.slice(0, 1), key.slice(2)];
    const arr = bin.slice(off, off + len);
    if (kind === 'p') c.params[name] = arr;
    else if (kind === 'm') c.adam.m[name] = arr;
    else c.adam.v[name] = arr;
  }
  return c;
}
