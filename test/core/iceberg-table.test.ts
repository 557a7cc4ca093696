import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDuckdb } from '../../core/duckdb.ts';
import type { DataFile } from '../../core/iceberg/manifest.ts';
import { CommitConflict } from '../../core/iceberg/rest-catalog.ts';
import { commitSnapshot, keyOf, liveFiles, loadTableState, manifestsOf, MERGE_MANIFESTS_AT } from '../../core/iceberg/table.ts';
import { ensureLakeTable, openLake } from '../../platform/lake.ts';
import { config, lakeNamespace } from '../helpers.ts';

test('Iceberg commits against the real catalog: a stale base or a file no longer live is refused; manifests merge past a hundred, every file kept', { timeout: 300_000 }, async (t) => {
  const { namespace, names, lake } = lakeNamespace(t, 'iceberg');
  const table = names.tables.userTransactionCounts;
  let state = await ensureLakeTable(lake, names, table, config.LAKE_BUCKET);
  const ids = state.schema.fields.map((field) => `'${field.name}': ${field.id}`).join(', ');

  const duck = await openDuckdb(config);
  const local = join(tmpdir(), `lakestream-iceberg-${process.pid}.parquet`);
  await duck.connection.run(`COPY (SELECT i::INTEGER AS user_id, (i + 1)::BIGINT AS total_transactions_count, (1763600000000 + i)::BIGINT AS event_timestamp_millis, DATE '2026-11-20' AS dt, 1::INTEGER AS hour, NULL::INTEGER AS source_partition, NULL::BIGINT AS source_offset FROM range(10) t(i))
    TO '${local}' (FORMAT parquet, FIELD_IDS {${ids}})`);
  const body = readFileSync(local);
  rmSync(local, { force: true });
  duck.close();
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
