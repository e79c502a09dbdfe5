/**
 * Discriminators for guidance, loaded from a manifest. This module knows the analytic
 * kind (closed-form log ratio of Gaussian mixtures, dg-math §7); trained ONNX
 * discriminators plug into the same Critic interface.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { z } from 'zod';
import type { MixtureSpecSchema } from '../../shared/manifest.js';
import { describeManifestErrors, DiscriminatorManifestSchema, type DiscriminatorManifest } from '../../shared/manifest.js';
import type { Critic } from './guidance.js';
import { readImage } from './image-io.js';
import { buildGuidanceModel, createOnnxCritic } from './onnx-critic.js';
import { parseModel, serializeModel } from './onnx/ir.js';
import type { SessionOptions } from './onnx/session.js';
import { manifestPathOf, readJsonFile } from './score-model.js';
import { exactLogRatioCritic, type GaussianMixture } from './toy-mixture.js';
import { fileInManifestFolder } from './manifest-files.js';

export interface LoadedDiscriminator {
  manifest: DiscriminatorManifest;
  manifestPath: string;
  critic: Critic;
  dispose(): Promise<void>;
}

async function mixtureFromSpec(
  spec: z.infer<typeof MixtureSpecSchema>,
  base: string,
  m: Extract<DiscriminatorManifest, { kind: 'analytic-mixture-ratio' }>,
): Promise<GaussianMixture> {
  const size = m.dataShape.reduce((a, b) => a * b, 1);
  let means: number[][];
  if (spec.meanImages) {
    const [c, h, w] = m.dataShape;
    if (m.dataShape.length !== 3 || (c !== 1 && c !== 3)) throw new Error('meanImages need a dataShape [channels (1 or 3), height, width]');
    means = await Promise.all(
      spec.meanImages.map(async (p, i) =>
        Array.from(
          await readImage(fileInManifestFolder(base, p, `mixture.meanImages[${i}]`), {
            channels: c,
            height: h!,
            width: w!,
            valueRange: m.valueRange,
          }),
        ),
      ),
    );
  } else means = spec.means!;
  for (const mu of means) if (mu.length !== size) throw new Error(`a mixture mean has ${mu.length} values; dataShape needs ${size}`);
  return { weights: spec.weights, variances: spec.variances, means };
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message;
    throw new Error(`cannot read ${what} "${path}": ${why}`, { cause: e });
  }
}

export async function loadDiscriminator(
  manifestPathOrFolder: string,
  expect?: { dataShape: number[]; valueRange: readonly [number, number] },
  session: SessionOptions = {},
  classLabel: number | null = null,
): Promise<LoadedDiscriminator> {
  const manifestPath = manifestPathOf(manifestPathOrFolder);
  const raw = await readJsonFile(manifestPath, 'discriminator manifest');
  const parsed = DiscriminatorManifestSchema.safeParse(raw);
  if (!parsed.success) throw new Error(describeManifestErrors(manifestPath, parsed.error));
  const manifest = parsed.data;
  if (expect) {
    if (manifest.dataShape.join('x') !== expect.dataShape.join('x')) {
      throw new Error(
        `discriminator "${manifestPath}" works on data of shape [${manifest.dataShape.join(', ')}], but the score model's is [${expect.dataShape.join(', ')}]`,
      );
    }
    if (manifest.valueRange[0] !== expect.valueRange[0] || manifest.valueRange[1] !== expect.valueRange[1]) {
      throw new Error(
        `discriminator "${manifestPath}" expects values in [${manifest.valueRange.join(', ')}], the score model in [${expect.valueRange.join(', ')}]`,
      );
    }
  }
  const base = dirname(manifestPath);
  const wrap = (e: unknown) => new Error(`discriminator "${manifestPath}": ${(e as Error).message}`, { cause: e });
  if (manifest.kind === 'onnx') {
    let guidance: Uint8Array;
    if (manifest.guidanceOnnx)
      guidance = await readBytes(fileInManifestFolder(base, manifest.guidanceOnnx, 'guidanceOnnx'), 'discriminator guidance graph');
    else {
      const forwardPath = fileInManifestFolder(base, manifest.onnx, 'onnx');
      const forward = parseModel(await readBytes(forwardPath, 'discriminator'), forwardPath);
      try {
        guidance = serializeModel(buildGuidanceModel(forward, manifest.io, manifest.output));
      } catch (e) {
        throw wrap(e);
      }
    }
    if (classLabel !== null && manifest.classes && classLabel >= manifest.classes.length) {
      throw new Error(
        `discriminator "${manifestPath}" knows classes 0…${manifest.classes.length - 1} (${manifest.classes.join(', ')}); got ${classLabel}`,
      );
    }
    const critic = await createOnnxCritic(guidance, { ...session, ...manifest, source: manifestPath, classLabel });
    return { manifest, manifestPath, critic, dispose: critic.dispose };
  }
  const [real, fake] = await Promise.all([
    mixtureFromSpec(manifest.real, base, manifest),
    mixtureFromSpec(manifest.fake, base, manifest),
  ]).catch((e) => {
    throw wrap(e);
  });
  const critic = { ...exactLogRatioCritic(real, fake), name: manifest.name };
  return { manifest, manifestPath, critic, dispose: async () => {} };
}
