/**
 * The one typed contract between the studio's back end (Electron main or server mode)
 * and its renderer. Every payload has a schema; main validates before acting.
 */
import { z } from 'zod';
import { CHANNELS } from './channels.js';
import { TranslateParamsSchema } from './params.js';

export const StudioInfoSchema = z.object({
  engineVersion: z.string(),
  defaultModel: z.string().nullable(),
  defaultDiscriminator: z.string().nullable(),
  note: z.string(),
});
export type StudioInfo = z.infer<typeof StudioInfoSchema>;

export const TranslateRequestSchema = z.object({
  /** files the user picked or dropped (main accepts only paths it handed out) */
  inputs: z.array(z.string().min(1)).min(1).max(10_000),
  params: TranslateParamsSchema,
  model: z.string().min(1).nullable().default(null),
  discriminator: z.string().min(1).nullable().default(null),
});
export type TranslateRequest = z.input<typeof TranslateRequestSchema>;

export const TranslateResultSchema = z.object({
  outputs: z.array(z.object({ source: z.string(), output: z.string(), seed: z.number() })),
  errors: z.array(z.object({ file: z.string(), message: z.string() })),
});
export type TranslateResult = z.infer<typeof TranslateResultSchema>;

/** Channel names and request schemas: the whole surface, nothing else. */
export const API = {
  getInfo: { channel: CHANNELS.getInfo, request: z.tuple([]) },
  translate: { channel: CHANNELS.translate, request: z.tuple([TranslateRequestSchema]) },
} as const;

export interface StudioApi {
  getInfo(): Promise<StudioInfo>;
  translate(req: TranslateRequest): Promise<TranslateResult>;
}

declare global {
  interface Window {
    dgStudio: StudioApi;
  }
}
