import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDuckdb } from '../../core/duckdb.ts';
import type { DataFile } from '../../core/iceberg/manifest.ts';
import { CommitConflict } from '../../core/iceberg/rest-catalog.ts';
import { commitSnapshot, dropUnusedRewrites, keyOf, liveFiles, loadTableState, manifestRewrites, manifestsOf, MERGE_MANIFESTS_AT, type TableState } from '../../core/iceberg/table.ts';
import { ensureLakeTable, openLake } from '../../platform/lake.ts';
import { config, lakeNamespace } from '../helpers.ts';

/** A Parquet file of ten user_transaction_counts rows in hour 01 of 2026-11-20, with the table's field ids. */
async function tenRows(state: TableState): Promise<Buffer> {
  const ids = state.schema.fields.map((field) => `'${field.name}': ${field.id}`).join(', ');
  const duck = await openDuckdb(config);
  const local = join(tmpdir(), `lakestream-iceberg-${process.pid}-${Math.random().toString(36).slice(2)}.parquet`);
  try {
    await duck.connection.run(`COPY (SELECT i::INTEGER AS user_id, (i + 1)::BIGINT AS total_transactions_count, (1763600000000 + i)::BIGINT AS event_timestamp_millis, DATE '2026-11-20' AS dt, 1::INTEGER AS hour, NULL::INTEGER AS source_partition, NULL::BIGINT AS source_offset FROM range(10) t(i))
      TO '${local}' (FORMAT parquet, FIELD_IDS {${ids}})`);
    return readFileSync(local);
  } finally {
    rmSync(local, { force: true });
    duck.close();
  }
}

test('Iceberg commits against the real catalog: a stale base or a file no longer live is refused; manifests merge past a hundred, every file kept', { timeout: 300_000 }, async (t) => {
  const { namespace, names, lake } = lakeNamespace(t, 'iceberg');
  const table = names.tables.userTransactionCounts;
  let state = await ensureLakeTable(lake, names, table, config.LAKE_BUCKET);
  const body = await tenRows(state);
  const location = state.loaded.metadata.location;
  const file = async (n: number): Promise<DataFile> => {
    const path = `${location}/data/dt=2026-11-20/hour=01/test-${n}.parquet`;
    await lake.store.put(keyOf(lake.store, path), body);
    return { path, records: 10n, sizeBytes: BigInt(body.length), partition: { dt: Date.UTC(2026, 10, 20) / 86_400_000, hour: 1 } };
  };

  const base = state;
  state = await commitSnapshot(lake, state, { operation: 'append', added: [await file(0)], writer: 'test' });
  await assert.rejects(commitSnapshot(lake, base, { operation: 'append', added: [await file(1)], writer: 'stale' }), CommitConflict, 'a commit planned on an older snapshot is refused');
  await assert.rejects(
    commitSnapshot(lake, state, { operation: 'replace', added: [], removed: new Set([`${location}/data/nope.parquet`]), writer: 'test' }),
    CommitConflict,
    'removing a file that is not live is a conflict, not a silent no-op',
  );

  const commits = MERGE_MANIFESTS_AT + 5;
  for (let n = 1; n < commits; n++) state = await commitSnapshot(lake, state, { operation: 'append', added: [await file(n)], writer: 'test' });
  const reloaded = (await loadTableState(lake, table.iceberg))!;
  assert.ok((await manifestsOf(lake, reloaded)).length < 10, 'the manifests were merged');
  assert.equal((await liveFiles(lake, reloaded)).length, commits, 'every file is still live');
  assert.equal(reloaded.snapshot!.summary['total-records'], String(commits * 10));
  const reader = await openLake(config, namespace);
  try {
    const [row] = (await reader.connection.runAndReadAll('SELECT count(*)::INTEGER AS n FROM user_transaction_counts')).getRowObjectsJS() as Array<{ n: number }>;
    assert.equal(row!.n, commits * 10, 'DuckDB reads every row once through the merged manifest');
  } finally {
    reader.close();
  }
});

test('Iceberg: a replace refused because a writer appended meanwhile reuses its manifest rewrite on the next attempt; rewrites of a commit given up are deleted', { timeout: 300_000 }, async (t) => {
  const { namespace, names, lake: plain } = lakeNamespace(t, 'iceberg-rewrites');
  const rewritesPut: string[] = [];
  const lake = { ...plain, store: { ...plain.store, put: (key: string, body: Buffer, contentType?: string) => (/-m-rewrite\.avro$/.test(key) && rewritesPut.push(key), plain.store.put(key, body, contentType)) } };
  const table = names.tables.userTransactionCounts;
  let state = await ensureLakeTable(lake, names, table, config.LAKE_BUCKET);
  const body = await tenRows(state);
  const location = state.loaded.metadata.location;
  const file = async (name: string): Promise<DataFile> => {
    const path = `${location}/data/dt=2026-11-20/hour=01/${name}.parquet`;
    await lake.store.put(keyOf(lake.store, path), body);
    return { path, records: 10n, sizeBytes: BigInt(body.length), partition: { dt: Date.UTC(2026, 10, 20) / 86_400_000, hour: 1 } };
  };
  const [a, b] = [await file('a'), await file('b')];
  state = await commitSnapshot(lake, state, { operation: 'append', added: [a], writer: 'test' });
  state = await commitSnapshot(lake, state, { operation: 'append', added: [b], writer: 'test' });

  // a compaction of a and b, planned on that snapshot, while a sink appends c
  const merged = await file('merged');
  const merging = { operation: 'replace' as const, added: [merged], removed: new Set([a.path, b.path]), writer: 'compaction' };
  const rewrites = manifestRewrites();
  const planned = state;
  state = await commitSnapshot(lake, state, { operation: 'append', added: [await file('c')], writer: 'sink' });
  await assert.rejects(commitSnapshot(lake, planned, { ...merging, rewrites }), CommitConflict);
  assert.equal(rewritesPut.length, 2, 'the refused attempt rewrote the two manifests holding a and b');
  for (const key of rewritesPut) assert.ok(await lake.store.get(key), `the refused attempt kept its rewrite ${key} for the next`);
  state = await commitSnapshot(lake, state, { ...merging, rewrites });
  assert.equal(rewritesPut.length, 2, 'the attempt on the newer snapshot wrote no rewrite again');
  await dropUnusedRewrites(lake.store, rewrites, true);
  for (const key of rewritesPut) assert.ok(await lake.store.get(key), 'the landed snapshot lists both rewrites: none deleted');
  assert.deepEqual((await liveFiles(lake, (await loadTableState(lake, table.iceberg))!)).map((entry) => entry.file.path.split('/').at(-1)).sort(), ['c.parquet', 'merged.parquet']);
  const reader = await openLake(config, namespace);
  try {
    const [row] = (await reader.connection.runAndReadAll('SELECT count(*)::INTEGER AS n FROM user_transaction_counts')).getRowObjectsJS() as Array<{ n: number }>;
    assert.equal(row!.n, 20, 'the merged file and c, each row once');
  } finally {
    reader.close();
  }

  // a commit given up after a refusal leaves no rewrite behind
  const givenUp = manifestRewrites();
  const stale = state;
  state = await commitSnapshot(lake, state, { operation: 'append', added: [await file('d')], writer: 'sink' });
  const before = rewritesPut.length;
  await assert.rejects(commitSnapshot(lake, stale, { operation: 'replace', added: [], removed: new Set([merged.path]), writer: 'compaction', rewrites: givenUp }), CommitConflict);
  const written = rewritesPut.slice(before);
  assert.equal(written.length, 1);
  await dropUnusedRewrites(lake.store, givenUp, false);
  assert.equal(await lake.store.get(written[0]!), undefined, 'the rewrite of the commit given up is deleted');
});
