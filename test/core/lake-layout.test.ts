import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventTimePartition, parseSinkFileKey, parseSinkPartitionState, sinkFileKey, sinkStateKey } from '../../core/lake-layout.ts';
import { LakestreamError } from '../../core/errors.ts';
import { validateTransaction } from '../../schemas/transactions.ts';

test('sink file names: the one writer and the one parser agree; other files are not sink files', () => {
  const key = sinkFileKey('ns/transactions', '2026-11-20', '07', { partition: 3, first: 120, last: 4_999 });
  assert.equal(key, 'ns/transactions/dt=2026-11-20/hour=07/p3-120-4999.parquet');
  assert.deepEqual(parseSinkFileKey(key), { partition: 3, first: 120, last: 4_999 });
  assert.equal(parseSinkFileKey('ns/transactions/dt=2026-11-20/hour=07/compacted-ab12.parquet'), undefined);
  assert.equal(parseSinkFileKey('ns/features/x/dt=2026-11-20/hour=07/backfill.parquet'), undefined);
  assert.deepEqual(eventTimePartition(Date.UTC(2026, 10, 20, 7, 59, 59, 999)), { dt: '2026-11-20', hour: '07' });
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
