/**
 * docs/manifests.md is written from the schemas: every JSON example on the page must parse as the
 * manifest kind its `format` names, and every field its tables name must exist in that schema.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClassifierManifestSchema, parseManifest, ScoreModelManifestSchema } from '../../src/shared/manifest.js';

const page = await readFile(join(import.meta.dirname, '..', '..', 'docs', 'manifests.md'), 'utf8');
const examples = [...page.matchAll(/```json\n([^]*?)```/g)].map((m) => m[1]!);

describe('docs/manifests.md', () => {
  it('has examples of every kind, and each parses against the schema its format names', () => {
    const kinds = examples.map((text, i) => {
      const r = parseManifest(`docs example ${i + 1}`, JSON.parse(text));
      if (!r.ok) throw new Error(r.error);
      return r.kind;
    });
    expect(new Set(kinds)).toEqual(new Set(['score', 'discriminator', 'classifier']));
    expect(examples.length).toBeGreaterThanOrEqual(8);
  });

  it('names every top-level field of the score-model and classifier schemas in its tables', () => {
    for (const schema of [ScoreModelManifestSchema, ClassifierManifestSchema]) {
      const fields = Object.keys(schema.shape);
      expect(fields.length).toBeGreaterThan(10);
      for (const field of fields) {
        if (field === 'format') continue;
        expect([field, page.includes(`\`${field}\``)]).toEqual([field, true]);
      }
    }
  });
});
