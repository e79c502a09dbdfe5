/**
 * bench/gallery-query: filtered, paginated gallery queries at 100k outputs — the first page
 * against a page 50k rows deep (keyset pagination should make them cost the same).
 *
 *   npx tsx bench/gallery-query.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TranslateParamsSchema } from '../src/shared/params.js';
import { Gallery } from '../src/main/services/gallery.js';
import { fmt, summarize } from './stats.js';

export async function galleryQuery(rows = 100_000) {
  const dir = await mkdtemp(join(tmpdir(), 'dg-gallery-bench-'));
  try {
    const g = await Gallery.open(dir);
    const runs = [0.2, 0.4, 0.6, 0.8].flatMap((t0) =>
      [0, 1, 2].map((w) =>
        g.startRun({
          params: TranslateParamsSchema.parse({ t0, dgWeight: w }),
          inputs: [],
          model: { name: w === 2 ? 'other' : 'noto', sha256: 'x' },
          discriminator: null,
          engineVersion: '0',
        }),
      ),
    );
    const insert = g.db.prepare('INSERT INTO outputs (run_id, created_at, source_path, sha256, seed) VALUES (?, ?, ?, ?, ?)');
    const t0 = performance.now();
    g.db.transaction(() => {
      for (let i = 0; i < rows; i++)
        insert.run(
          runs[i % runs.length]!,
          new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
          `/photos/img ${i}.png`,
          ((i * 2654435761) % 2 ** 32).toString(16).padStart(64, '0'),
          i,
        );
    })();
    console.log(`inserted ${rows} rows in ${fmt(performance.now() - t0)}`);
    const time = (f: () => unknown) => {
      const out: number[] = [];
      for (let r = 0; r < 21; r++) {
        const s = performance.now();
        f();
        if (r > 0) out.push(performance.now() - s);
      }
      return summarize(out);
    };
    const first = time(() => g.search({ limit: 50 }));
    const deepRow = g.db.prepare('SELECT created_at, id FROM outputs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 50000').get() as {
      created_at: string;
      id: number;
    };
    const deep = time(() => g.search({ limit: 50, after: { createdAt: deepRow.created_at, id: deepRow.id } }));
    const filtered = time(() => g.search({ limit: 50, model: 'noto', t0Min: 0.3, t0Max: 0.7 }));
    const text = time(() => g.search({ limit: 50, text: 'img 9999' }));
    console.log(
      `first page ${fmt(first.median)}, page 50k deep ${fmt(deep.median)} (ratio ${(deep.median / first.median).toFixed(2)}), model+t0 filter ${fmt(filtered.median)}, text search ${fmt(text.median)}`,
    );
    g.db.close();
    return { first: first.median, deep: deep.median, filtered: filtered.median, text: text.median };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await galleryQuery();
