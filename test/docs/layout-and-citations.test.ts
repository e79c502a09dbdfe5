/**
 * The README's layout table is the tree, and the code's citations resolve: every path the table names
 * exists, every folder of src/main and src/main/engine is named in it, and every "dg-math §N" in the
 * code names a section of docs/dg-math.md (the repository's copy of the math page).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const layout = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 5));
const named = [...layout.matchAll(/`((?:src|test|bench|tools|docs)[^`]*)`/g)].map((m) => m[1]!.replace(/\/$/, ''));

function walk(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|svelte)$/.test(n)) out.push(p);
  }
  return out;
}

describe('README layout and the math page citations', () => {
  it('every path in the layout table exists', () => {
    expect(named.length).toBeGreaterThan(15);
    for (const p of named.filter((p) => !p.includes('*'))) expect([p, existsSync(join(root, p))]).toEqual([p, true]);
  });

  it('every folder of src/main and of the engine is in the table', () => {
    for (const parent of ['src/main', 'src/main/engine']) {
      for (const d of readdirSync(join(root, parent))) {
        if (!statSync(join(root, parent, d)).isDirectory()) continue;
        const path = `${parent}/${d}`;
        expect([path, named.includes(path)]).toEqual([path, true]);
      }
    }
  });

  it('every "dg-math §N" in the code names a section of docs/dg-math.md', () => {
    const page = readFileSync(join(root, 'docs', 'dg-math.md'), 'utf8');
    const sections = new Set([...page.matchAll(/^## (\d+)\./gm)].map((m) => m[1]!));
    expect(sections.size).toBeGreaterThanOrEqual(11);
    let cited = 0;
    for (const f of [...walk(join(root, 'src')), ...walk(join(root, 'bench')), ...walk(join(root, 'tools'))]) {
      for (const m of readFileSync(f, 'utf8').matchAll(/dg-math[^§\n]{0,12}§ ?(\d+)/g)) {
        cited++;
        expect([relative(root, f), m[1], sections.has(m[1]!)]).toEqual([relative(root, f), m[1], true]);
      }
    }
    expect(cited).toBeGreaterThan(50);
    expect(existsSync(join(root, 'docs', 'style.md'))).toBe(true);
  });
});
