import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CommitConflict } from '../../core/iceberg/rest-catalog.ts';
import { commitSnapshot, ensureTable, loadTableState } from '../../core/iceberg/table.ts';
import { declaredColumns, warehouseLocation } from '../../platform/lake.ts';
import { config, lakeNamespace } from '../helpers.ts';

/**
 * A creator paused between creating a table and its first commit (the chaos zombie run found
 * it) must not replace what others committed since: Nessie does not enforce "no snapshot yet",
 * so the first commit is fenced by the partition spec it adds instead.
 */
test('a late first commit of a paused table creator is refused and the table keeps what others committed', { timeout: 120_000 }, async (t) => {
  const { names, lake } = lakeNamespace(t, 'iceberg-init');
  const table = names.tables.transactions;
  await lake.catalog.createNamespace(table.iceberg.namespace, { location: warehouseLocation(names, config.LAKE_BUCKET) });
  // the paused creator: it created the table and read it back, then stopped before its first commit
  await lake.catalog.createTable(table.iceberg.namespace, table.iceberg.name, { schema: (await import('../../core/iceberg/schema.ts')).evolveSchema(undefined, declaredColumns(table)).schema });
  const paused = (await loadTableState(lake, table.iceberg))!;
  assert.equal(paused.snapshot, undefined);
  // meanwhile another writer initialises the table and commits on top of it
  const live = await ensureTable(lake, table.iceberg, declaredColumns(table), warehouseLocation(names, config.LAKE_BUCKET));
  const moved = await commitSnapshot(lake, live, { operation: 'append', added: [], offsets: { topic: table.topic, topicId: 'x', next: { 0: 42 } }, writer: 'other' });
  await assert.rejects(commitSnapshot(lake, paused, { operation: 'append', added: [], writer: 'create', initialize: true }), CommitConflict);
  await assert.rejects(commitSnapshot(lake, paused, { operation: 'append', added: [], writer: 'late' }), /has no snapshot/);
  const now = (await loadTableState(lake, table.iceberg))!;
  assert.equal(now.snapshot?.['snapshot-id'], moved.snapshot?.['snapshot-id'], 'the late creator replaced nothing');
  assert.deepEqual(now.offsets?.next, { 0: 42 });
});
