import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../core/config.ts';

/**
 * The folders' dependencies run one way: core/ (plumbing, the runtime, Iceberg) imports nothing
 * of the platform's own folders, platform/ (the catalog, access, the client context) builds on
 * core/ and schemas/, and no two folders import each other.
 */
const skip = new Set(['node_modules', '.git', 'test']);
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (skip.has(entry.name)) return [];
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sources(path) : entry.name.endsWith('.ts') ? [path] : [];
  });
}
const folderOf = (path: string) => relative(repoRoot, path).split('/')[0]!;
const edges = new Map<string, Set<string>>();
for (const file of sources(repoRoot)) {
  for (const match of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
    const target = folderOf(normalize(join(dirname(file), match[1]!)));
    const from = folderOf(file);
    if (target !== from) edges.set(`${from} -> ${target}`, (edges.get(`${from} -> ${target}`) ?? new Set()).add(relative(repoRoot, file)));
  }
}

test('architecture: core imports only core', () => {
  assert.deepEqual([...edges.keys()].filter((edge) => edge.startsWith('core -> ')), []);
});

test('architecture: no two folders import each other', () => {
  const cycles = [...edges.keys()].filter((edge) => {
    const [from, to] = edge.split(' -> ') as [string, string];
    return edges.has(`${to} -> ${from}`);
  });
  assert.deepEqual(cycles.map((edge) => `${edge} (${[...edges.get(edge)!].join(', ')})`), []);
});
