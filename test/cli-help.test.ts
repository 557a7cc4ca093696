import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../core/config.ts';
import { runCliFile } from './helpers.ts';

/**
 * Every command a package.json script runs answers `--help` with its usage, its options and the
 * environment it reads, and exits 0 without touching a server; its options come from one
 * declaration (defineCommand), so the help cannot miss an option the command accepts.
 */
const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const files = [...new Set(Object.values(scripts).flatMap((script) => [...script.matchAll(/(?:tsx|--import tsx) ([\w/.-]+\.ts)/g)].map((m) => m[1]!)))].sort();
// the demo takes no options at all: its help is one paragraph
const declared = files.filter((file) => file !== 'scripts/demo.ts');

test('help: every command declares its options with defineCommand, none parses argv by hand', () => {
  for (const file of declared) {
    const source = readFileSync(join(repoRoot, file), 'utf8');
    assert.match(source, /defineCommand\(/, `${file} declares its command line`);
    assert.doesNotMatch(source, /\bparseArgs\(/, `${file} parses argv by hand`);
  }
});

for (const file of declared) {
  test(`help: ${file} --help`, { timeout: 60_000 }, async () => {
    // a dead endpoint everywhere: the help must not need one
    const dead = 'http://127.0.0.1:9';
    const result = await runCliFile(file, ['--help'], { KAFKA_BROKERS: '127.0.0.1:9', SCHEMA_REGISTRY_URL: dead, S3_ENDPOINT: dead, REDIS_URL: 'redis://127.0.0.1:9', ICEBERG_CATALOG_URL: dead }, 30_000);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^Usage: /);
    assert.match(result.stdout, /\n {2}-h, --help +this text\n/);
    assert.match(result.stdout, /\nEnvironment:\n {2}KAFKA_BROKERS/);
    assert.equal(result.stderr, '');
  });
}
