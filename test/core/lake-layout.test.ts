import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { eventTimePartition, parseSinkFileKey, parseSinkPartitionState, sinkFileKey, sinkFileSql, sinkStateKey } from '../../core/lake-layout.ts';
import { LakestreamError } from '../../core/errors.ts';
import { validateTransaction } from '../../schemas/transactions.ts';

test('sink file names: the one writer and the one parser agree; other files are not sink files', () => {
  const key = sinkFileKey('ns/transactions', '2026-11-20', '07', { partition: 3, first: 120, last: 4_999 });
  assert.equal(key, 'ns/transactions/dt=2026-11-20/hour=07/p3-120-4999.parquet');
  assert.deepEqual(parseSinkFileKey(key), { partition: 3, first: 120, last: 4_999 });
  assert.deepEqual(parseSinkFileKey('s3://lake/ns/warehouse/transactions_1/data/dt=2026-11-20/hour=07/p3-120-4999-0b5c4a1e-3f2d-4c6b-9a8e-7d1f2e3c4b5a.parquet'), { partition: 3, first: 120, last: 4_999 });
  assert.equal(parseSinkFileKey('ns/transactions/dt=2026-11-20/hour=07/compacted-ab12.parquet'), undefined);
  assert.equal(parseSinkFileKey('ns/transactions/dt=2026-11-20/hour=07/compacted-0b5c4a1e-3f2d-4c6b-9a8e-7d1f2e3c4b5a.parquet'), undefined);
  assert.equal(parseSinkFileKey('ns/features/x/dt=2026-11-20/hour=07/backfill.parquet'), undefined);
  assert.deepEqual(eventTimePartition(Date.UTC(2026, 10, 20, 7, 59, 59, 999)), { dt: '2026-11-20', hour: '07' });
});

test('sink file names in SQL: DuckDB reads the partition and first offset the same way, with or without the uuid', async () => {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const sql = sinkFileSql('f');
    const names = [
      'ns/transactions/dt=2026-11-20/hour=07/p3-120-4999.parquet',
      's3://lake/ns/warehouse/transactions_1/data/dt=2026-11-20/hour=07/p3-120-4999-0b5c4a1e-3f2d-4c6b-9a8e-7d1f2e3c4b5a.parquet',
      's3://lake/ns/warehouse/transactions_1/data/dt=2026-11-20/hour=07/compacted-0b5c4a1e-3f2d-4c6b-9a8e-7d1f2e3c4b5a.parquet',
    ];
    const rows = (
      await connection.runAndReadAll(`SELECT ${sql.partition} AS p, ${sql.firstOffset} AS o FROM unnest([${names.map((n) => `'${n}'`).join(', ')}]) AS t(f)`)
    ).getRowObjectsJS();
    assert.deepEqual(rows, [
      { p: 3, o: 120n },
      { p: 3, o: 120n },
      { p: null, o: null },
    ]);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
});

test('sink partition state: well-formed objects parse, anything else is refused with the key', () => {
  const key = sinkStateKey('_lakestream/sinks/backup', 2);
  assert.equal(key, '_lakestream/sinks/backup/partition=2.json');
  assert.deepEqual(parseSinkPartitionState({ committedThrough: 41 }, key), { committedThrough: 41 });
  const pending = { committedThrough: -1, pending: { from: 0, to: 9, files: ['a.parquet'] } };
  assert.deepEqual(parseSinkPartitionState(pending, key), pending);
  for (const bad of [null, {}, { committedThrough: 'x' }, { committedThrough: -2 }, { committedThrough: 1, pending: { from: 2 } }]) {
    assert.throws(() => parseSinkPartitionState(bad, key), /partition=2\.json/);
  }
});

test('record rules: a non-object is refused as a whole record, extra fields pass through untouched', () => {
  assert.throws(
    () => validateTransaction('not a record'),
    (error: unknown) => error instanceof LakestreamError && error.code === 'RECORD_INVALID' && /\(record\): must be an object/.test(error.message),
  );
  const evolved = { user_id: 1, transaction_timestamp_millis: 1, amount: 1, currency: 'EUR', counterpart_id: 2, channel: 'web' };
  assert.equal(validateTransaction(evolved), evolved);
});
