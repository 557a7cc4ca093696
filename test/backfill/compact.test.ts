import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { compactDay, compactionTarget } from '../../backfill/compact.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, testS3, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const HOUR_START = Date.UTC(2026, 10, 19, 10);

test('compaction keeps query results identical, is idempotent, leaves the open hour alone, and loses nothing beside a running sink', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'compact');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  // Events of two hours, 10:xx and 11:xx on one day.
  const next = createTransactionGenerator({ users: 60, seed: 4, spreadDays: 0, now: HOUR_START });
  const inHour = (hour: number) => () => ({ ...next(), transaction_timestamp_millis: HOUR_START + hour * 3_600_000 + Math.floor(Math.random() * 3_600_000) });
  const sink = pipeline.job('transactions-job-backup', { flushIntervalMs: 300 });
  await sink.start();

  let produced = 0;
  let producing = true;
  const background = (async () => {
    while (producing) {
      await producer.send(Array.from({ length: 100 }, inHour((produced / 100) % 2)));
      produced += 100;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  })();

  const target = compactionTarget('transactions', pipeline.namespace);
  const dt = new Date(HOUR_START).toISOString().slice(0, 10);
  const insideHour11 = new Date(HOUR_START + 3_600_000 + 60_000);
  let sawOpenHour = false;
  // Compact over and over while the sink keeps adding files to both hours.
  for (let round = 0; round < 4; round++) {
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const results = await compactDay(config, target, dt, { now: insideHour11 });
    assert.ok(!results.some((r) => r.hour === '11' && r.output), 'the open hour is left alone');
    sawOpenHour ||= results.some((r) => r.hour === '11' && r.skipped === 'open hour');
  }
  assert.ok(sawOpenHour, 'the open hour was seen and skipped');
  producing = false;
  await background;
  await waitFor(`${produced} rows archived`, async () => {
    const [row] = await pipeline.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
    return Number(row!.n) === produced ? true : undefined;
  });
  await sink.stop();

  const rows = () =>
    pipeline.query<{ r: string }>(
      `SELECT concat_ws('|', user_id, transaction_timestamp_millis, amount, currency, counterpart_id) AS r FROM transactions ORDER BY r`,
    );
  const before = await rows();
  assert.equal(before.length, produced, 'nothing lost or duplicated while compacting beside the sink');
  assert.equal(new Set(before.map((row) => row.r)).size, produced);

  const s3 = testS3(t);
  const objects = async () =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: config.LAKE_BUCKET, Prefix: `${target.table}/` }))).Contents ?? []).map((o) => o.Key!).sort();
  const files11 = (await objects()).filter((key) => key.includes('/hour=11/')).length;
  assert.ok(files11 > 1, 'hour 11 still has its many small files');

  const all = await compactDay(config, target, dt, { includeOpenHour: true, now: insideHour11 });
  assert.ok(all.every((r) => r.output || r.skipped === 'already one file'));
  const compacted = await objects();
  assert.deepEqual(
    compacted.filter((key) => key.endsWith('.parquet')).map((key) => /hour=(\d\d)\//.exec(key)![1]),
    ['10', '11'],
    'one file per hour',
  );
  assert.deepEqual(await rows(), before, 'query results identical after compaction');

  const again = await compactDay(config, target, dt, { includeOpenHour: true, now: insideHour11 });
  assert.ok(again.every((r) => !r.output), 'a second run merges nothing');
  assert.deepEqual(await objects(), compacted, 'and changes no object');
});
