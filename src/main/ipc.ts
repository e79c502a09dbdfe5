/**
 * IPC handlers: validate every payload against the shared schema, then call a service.
 * Kept free of Electron so it is testable without the binary; index.ts wires it in.
 */
import type { z } from 'zod';
import { API, type StudioInfo, type TranslateResult } from '../shared/api.js';
import { ENGINE_VERSION } from '../shared/version.js';
import { bundledDefaults } from './services/resources.js';
import { translateFiles } from './services/translate-files.js';

export interface IpcContext {
  outDir: string;
}

export class PayloadError extends Error {
  constructor(channel: string, error: z.ZodError) {
    super(`invalid request on ${channel}: ${error.issues.map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`).join('; ')}`);
    this.name = 'PayloadError';
  }
}

function validate<S extends z.ZodType>(channel: string, schema: S, args: unknown[]): z.infer<S> {
  const parsed = schema.safeParse(args);
  if (!parsed.success) throw new PayloadError(channel, parsed.error);
  return parsed.data;
}

export function createHandlers(ctx: IpcContext) {
  return {
    [API.getInfo.channel]: async (...args: unknown[]): Promise<StudioInfo> => {
      validate(API.getInfo.channel, API.getInfo.request, args);
      const d = bundledDefaults();
      return { engineVersion: ENGINE_VERSION, defaultModel: d.scoreModel, defaultDiscriminator: d.discriminator, note: d.note };
    },
    [API.translate.channel]: async (...args: unknown[]): Promise<TranslateResult> => {
      const [req] = validate(API.translate.channel, API.translate.request, args);
      const d = bundledDefaults();
      const { outputs, errors } = await translateFiles({
        inputs: req.inputs,
        outDir: ctx.outDir,
        params: req.params,
        modelManifest: req.model ?? d.scoreModel,
        discriminatorManifest: req.discriminator ?? d.discriminator ?? undefined,
      });
      return { outputs: outputs.map((o) => ({ source: o.source, output: o.output, seed: o.seed })), errors };
    },
  };
}
