import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { parseSinkFileKey, sinkStateKey } from '../../core/lake-layout.ts';
import { createObjectStore } from '../../core/object-store.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { createLakeSink } from '../../sinks/lake/lake-sink.ts';
import { config, onCleanup, testS3 } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

async function fixture(t: TestContext, label: string, spreadDays = 2) {
  const pipeline = await setupPipeline(t, label);
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  // With no spread, every event falls in one hour, so each flush of a partition is one file.
  const next = createTransactionGenerator({ users: 300, seed: label.length, spreadDays, now: spreadDays ? undefined : Date.UTC(2026, 10, 20, 12, 30) });
  const table = pipeline.names.tables.transactions;
  const runSink = async () => {
    const sink = createLakeSink(table, { flushIntervalMs: 500 }, pipeline.context);
    onCleanup(t, () => sink.stop());
    await sink.start();
    return sink;
  };
  const rows = () => pipeline.count('transactions');
  const waitForRows = (n: number) => pipeline.waitForCount('transactions', n, 120_000, 500);
  const duplicates = async () =>
    (await pipeline.query('SELECT user_id, transaction_timestamp_millis, amount, currency, counterpart_id FROM transactions GROUP BY ALL HAVING count(*) > 1')).length;
  /** Moves the sink's consumer group back to the start of the topic, as if its commits were lost. */
  const rewindGroup = async () => {
    const metadata = await pipeline.admin.metadata({ topics: [table.topic], forceUpdate: true });
    const partitions = metadata.topics.get(table.topic)!.partitionsCount;
    await pipeline.admin.alterConsumerGroupOffsets({
      groupId: table.group,
      topics: [{ name: table.topic, partitionOffsets: Array.from({ length: partitions }, (_, partition) => ({ partition, offset: 0n })) }],
    });
  };
  return { ...pipeline, producer, next, table, runSink, rows, waitForRows, duplicates, rewindGroup };
}

test('lake sink: time-based flushes publish rows without a stop, and a replay adds nothing', { timeout: 300_000 }, async (t) => {
  const f = await fixture(t, 'replay');
  await f.producer.send(Array.from({ length: 3_000 }, f.next));
  const sink = await f.runSink();
  assert.equal(await f.waitForRows(3_000), 3_000, 'flushed by time while running');
  await sink.stop();

  await f.rewindGroup();
  await f.producer.send(Array.from({ length: 1_000 }, f.next));
  const again = await f.runSink();
  assert.equal(await f.waitForRows(4_000), 4_000);
  await again.stop();
  assert.equal(await f.rows(), 4_000, 'the replayed 3,000 were skipped: the lake, not Kafka, says what is archived');
  assert.equal(await f.duplicates(), 0);
});

test('lake sink: a flush interrupted between upload and commit is undone and redone exactly', { timeout: 300_000 }, async (t) => {
  const f = await fixture(t, 'torn', 0);
  await f.producer.send(Array.from({ length: 2_000 }, f.next));
  const sink = await f.runSink();
  await f.waitForRows(2_000);
  await sink.stop();

  // Rewrite one partition's state as a crash would leave it: its last file uploaded but the
  // flush not committed, plus a stray partial file of the same flush.
  const s3 = testS3(t);
  const store = createObjectStore(s3, config.LAKE_BUCKET);
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.LAKE_BUCKET, Prefix: `${f.table.path}/` }));
  const files = (listed.Contents ?? []).map((object) => object.Key!).filter((key) => key.endsWith('.parquet'));
  const parsed = files.map((key) => {
    const file = parseSinkFileKey(key)!;
    return { key, range: [file.partition, file.first, file.last] as [number, number, number] };
  });
  // the newest file of one partition: the output of that partition's last flush
  const [victim, [partition, first, last]] = parsed
    .filter(({ range }) => range[0] === parsed[0]!.range[0])
    .sort((a, b) => b.range[1] - a.range[1])
    .map(({ key, range }) => [key, range] as const)[0]!;
  const stateKey = sinkStateKey(f.table.sinkStateRoot, partition);
  const state = await store.getJson<{ committedThrough: number }>(stateKey);
  assert.equal(state?.value.committedThrough, last, 'the partition state ends with that file');
  const stray = victim.replace(/p\d+-\d+-\d+\.parquet$/, `p${partition}-${first}-${first}.parquet`);
  await s3.send(new PutObjectCommand({ Bucket: config.LAKE_BUCKET, Key: stray, Body: await (await import('node:fs/promises')).readFile(new URL(import.meta.url)) }));
  await store.putJson(stateKey, { committedThrough: first - 1, pending: { from: first, to: last, files: [victim, stray] } });
  await f.rewindGroup();

  const again = await f.runSink();
  await f.waitForRows(2_000);
  await f.producer.send(Array.from({ length: 500 }, f.next));
  assert.equal(await f.waitForRows(2_500), 2_500);
  await again.stop();
  assert.equal(await f.rows(), 2_500);
  assert.equal(await f.duplicates(), 0);
  const after = await s3.send(new ListObjectsV2Command({ Bucket: config.LAKE_BUCKET, Prefix: `${f.table.path}/` }));
  assert.ok(!(after.Contents ?? []).some((object) => object.Key === stray), 'the stray file of the torn flush is gone');
  const recovered = await store.getJson<{ committedThrough: number; pending?: unknown }>(stateKey);
  assert.equal(recovered?.value.pending, undefined, 'no intent left behind');
});
