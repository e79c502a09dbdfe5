/**
 * The queue protocol of scale-out (docs/scale-out.md): what a submitter puts on the BullMQ queue and what a
 * worker returns. Images travel through Redis (base64 in the job, PNGs in its return value), so workers need
 * no shared folder; a chunk of 64×64 sources is ~100 KB. Every message is validated on arrival: a queue
 * message is hostile input like any request.
 */
import { z } from 'zod';
import { TranslateParamsSchema } from '../../../shared/params.js';

export const QUEUE_NAME = 'dg-translate';
/** the only job kind a worker runs */
export const TRANSLATE_CHUNK = 'translate-chunk';
/** at most this many images in a chunk, and this many bytes (base64) in one image */
export const MAX_CHUNK_ITEMS = 256;
export const MAX_IMAGE_BASE64 = 48 * 2 ** 20;

/** A model by name and by the digest of its folder (folderDigest): a worker runs only a model it has. */
const ModelRef = z.strictObject({ name: z.string().min(1).max(200), digest: z.string().regex(/^[0-9a-f]{64}$/) });
export type ModelRef = z.infer<typeof ModelRef>;

const fileName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^/\\\0]+$/, 'a file name, not a path');

export const ChunkSchema = z.strictObject({
  version: z.literal(1),
  /** the submitting run's tag (16 hex) and this chunk's number in it */
  run: z.string().regex(/^[0-9a-f]{16}$/),
  chunk: z.number().int().min(0),
  /** the position of the first item in the whole batch: item i has seed params.seed + firstIndex + i */
  firstIndex: z.number().int().min(0),
  params: TranslateParamsSchema,
  model: ModelRef,
  discriminator: ModelRef.nullable(),
  items: z
    .array(
      z.strictObject({
        name: fileName,
        data: z
          .string()
          .max(MAX_IMAGE_BASE64)
          .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64'),
      }),
    )
    .min(1)
    .max(MAX_CHUNK_ITEMS),
});
export type Chunk = z.infer<typeof ChunkSchema>;

export const ChunkResultSchema = z.strictObject({
  outputs: z.array(
    z.strictObject({
      /** position in the whole batch */
      index: z.number().int().min(0),
      /** the output's file name (the same a single-machine run gives it) */
      name: fileName.regex(/\.png$/, 'a PNG name'),
      png: z.string(),
    }),
  ),
  errors: z.array(z.strictObject({ index: z.number().int().min(0), message: z.string().max(2000) })),
});
export type ChunkResult = z.infer<typeof ChunkResultSchema>;

/** BullMQ job id of a chunk: stable, so adding a chunk twice (a resumed submitter) adds it once. */
export const chunkJobId = (run: string, chunk: number) => `${run}-${chunk}`;
