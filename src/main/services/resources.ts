/**
 * Where the bundled models live, and which ones are the defaults.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const DefaultsSchema = z.object({
  scoreModel: z.string(),
  discriminator: z.string().nullable(),
  note: z.string().default(''),
});
export type BundledDefaults = { scoreModel: string; discriminator: string | null; note: string };

/** The resources folder: $DG_STUDIO_RESOURCES, else the nearest `resources/` above this file. */
export function resourcesDir(): string {
  const env = process.env['DG_STUDIO_RESOURCES'];
  if (env) return resolve(env);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'resources');
    if (existsSync(join(candidate, 'models', 'defaults.json'))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the bundled resources folder; set DG_STUDIO_RESOURCES to it');
    dir = up;
  }
}

/** Absolute paths of the bundled default score model and discriminator manifests. */
export function bundledDefaults(): BundledDefaults {
  const models = join(resourcesDir(), 'models');
  const raw = DefaultsSchema.parse(JSON.parse(readFileSync(join(models, 'defaults.json'), 'utf8')));
  return {
    scoreModel: join(models, raw.scoreModel),
    discriminator: raw.discriminator ? join(models, raw.discriminator) : null,
    note: raw.note,
  };
}

/** Where the studio keeps its data: $DG_STUDIO_HOME, else $XDG_DATA_HOME/dg-studio or ~/.local/share/dg-studio. */
export function dataDir(): string {
  const env = process.env['DG_STUDIO_HOME'];
  if (env) return resolve(env);
  return join(process.env['XDG_DATA_HOME'] || join(homedir(), '.local', 'share'), 'dg-studio');
}

export function defaultGalleryDir(): string {
  return join(dataDir(), 'gallery');
}
