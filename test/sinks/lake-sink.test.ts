import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { CommitStateUnknown } from '../../core/iceberg/rest-catalog.ts';
import { commitSnapshot, keyOf, liveFiles, loadTableState } from '../../core/iceberg/table.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { createLakeSink } from '../../sinks/lake/lake-sink.ts';
import { config, onCleanup, waitFor } from '../helpers.ts';
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
  /** Each partition's end offset: past its records and the producer's commit markers. */
  const endOffsets = async () => {
    const metadata = await pipeline.admin.metadata({ topics: [table.topic], forceUpdate: true });
    const partitions = Array.from({ length: metadata.topics.get(table.topic)!.partitionsCount }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n }));
    const [listed] = await pipeline.admin.listOffsets({ topics: [{ name: table.topic, partitions }] });
    return Object.fromEntries(listed!.partitions.map((p) => [String(p.partitionIndex), Number(p.offset)]));
  };
  return { ...pipeline, producer, next, table, runSink, rows, waitForRows, duplicates, rewindGroup, endOffsets };
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

test('lake sink: files no snapshot references are invisible, and the sink commits past them', { timeout: 300_000 }, async (t) => {
  const f = await fixture(t, 'torn', 0);
  await f.producer.send(Array.from({ length: 2_000 }, f.next));
  const sink = await f.runSink();
  await f.waitForRows(2_000);
  await sink.stop();

  // What a crash between upload and commit leaves: a data file in the table's folder that no
  // snapshot references (a copy of a real one, so a glob would count its rows twice).
  const lake = f.context.lakeTables();
  const state = (await loadTableState(lake, f.table.iceberg))!;
  const [file] = await liveFiles(lake, state);
  const stray = file!.file.path.replace(/\.parquet$/, '-stray.parquet');
  await lake.store.put(keyOf(lake.store, stray), (await lake.store.get(keyOf(lake.store, file!.file.path)))!);
  await f.rewindGroup();

  const again = await f.runSink();
  await f.producer.send(Array.from({ length: 500 }, f.next));
  assert.equal(await f.waitForRows(2_500), 2_500);
  await again.stop();
  assert.equal(await f.rows(), 2_500, 'the unreferenced file is not read');
  assert.equal(await f.duplicates(), 0);
  const offsets = (await loadTableState(lake, f.table.iceberg))!.offsets!;
  const ends = await f.endOffsets();
  for (const [partition, end] of Object.entries(ends)) {
    // the last commit marker may or may not have been read past: either is the end of the data
    assert.ok(offsets.next[Number(partition)] === end || offsets.next[Number(partition)] === end - 1, `partition ${partition}: the snapshot says ${offsets.next[Number(partition)]}, the topic ends at ${end}`);
  }
});

/**
 * The chaos zombie run found this: a commit lands but its answer is lost (the instance was
 * paused mid-request), and another owner commits on top before the answer is checked. The
 * catalog keeps only the current snapshot, so the commit cannot be found by id; the sink then
 * took itself for fenced and deleted the files its own landed commit references: every reader
 * of the table failed on a 404. (Seen failing so before the fix.)
 */
test('lake sink: a landed commit whose answer was lost keeps its files when another owner has committed on top', { timeout: 300_000 }, async (t) => {
  const f = await fixture(t, 'lost-answer', 0);
  await f.producer.send(Array.from({ length: 1_000 }, f.next));
  const real = f.context.lakeTables();
  let lost = false;
  const catalog: typeof real.catalog = {
    ...real.catalog,
    async commitTable(namespace, name, requirements, updates) {
      const loaded = await real.catalog.commitTable(namespace, name, requirements, updates);
      const state = (await loadTableState(real, f.table.iceberg))!;
      // the table's initialisation, and every commit after the lost one, go through
      if (lost || !state.offsets) return loaded;
      lost = true;
      // another owner takes the partitions over from here and archives one more record of each
      const next = Object.fromEntries(Object.entries(state.offsets!.next).map(([partition, offset]) => [partition, offset + 1]));
      await commitSnapshot(real, state, { operation: 'append', added: [], offsets: { ...state.offsets!, next }, writer: 'another owner' });
      throw new CommitStateUnknown('the answer was lost');
    },
  };
  const context = { ...f.context, lakeTables: () => ({ catalog, store: real.store }) };
  const sink = createLakeSink(f.table, { flushIntervalMs: 500 }, context);
  onCleanup(t, () => sink.stop());
  await sink.start();
  const handled = () => {
    const stats = sink.stats() as { commits?: number; fenced?: number };
    return lost && (stats.commits! > 0 || stats.fenced! > 0) ? true : undefined;
  };
  await Promise.race([sink.failed, waitFor('the lost answer to be handled', async () => handled(), 120_000, 200)]);
  await sink.stop();

  const state = (await loadTableState(real, f.table.iceberg))!;
  for (const entry of await liveFiles(real, state)) {
    assert.ok(await real.store.get(keyOf(real.store, entry.file.path)), `${entry.file.path}: referenced by the table, so it must exist`);
  }
  assert.equal(await f.rows(), 1_000, 'the landed commit is read whole');
});
