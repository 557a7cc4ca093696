import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAvroDecoder } from '../../../core/avro.ts';
import { readPartitionsToEnd } from '../../../core/changelog.ts';
import { metrics } from '../../../core/metrics.ts';
import { createTransactionsProducer } from '../../../ingest/transactions/producer.ts';
import { config, onCleanup, waitFor } from '../../helpers.ts';
import { setupPipeline } from '../../pipeline/fixture.ts';

const PARTITIONS = [0, 1, 2, 3, 4, 5];

/**
 * A job stopped for longer than its input's retention comes back to a log that starts past its
 * committed offset; librdkafka's auto.offset.reset then resumes at the log start without a
 * word. The records in between are lost to the job: it must say so and count them.
 */
test('runtime: a job whose committed offset fell below the log start logs and counts the records deleted unread', { timeout: 300_000 }, async (t) => {
  const { names, registry, job, admin } = await setupPipeline(t, 'deleted-unread');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const event = (user: number, n: number) => ({ user_id: user, transaction_timestamp_millis: 1_700_000_000_000 + n, amount: 1, currency: 'EUR', counterpart_id: 1 });
  const decode = createAvroDecoder(registry);
  const countsEmitted = async () => {
    let emitted = 0;
    await readPartitionsToEnd(config, names.topic.userTransactionCounts, PARTITIONS, async (message) => {
      await decode(message.value);
      emitted++;
    });
    return emitted;
  };
  const group = names.group('transactions-ml-features-job');
  const deletedUnread = async () => (await metrics.offsetsDeletedUnread.get()).values.filter((v) => v.labels.job === group).reduce((sum, v) => sum + v.value, 0);

  const first = job('transactions-ml-features-job');
  await first.start();
  await producer.send(Array.from({ length: 60 }, (_, user) => event(user, 0)));
  await waitFor('60 counts', async () => ((await countsEmitted()) >= 60 ? true : undefined));
  await first.stop();

  // while the job is down, 90 records arrive and retention (here DeleteRecords) removes them
  await producer.send(Array.from({ length: 90 }, (_, user) => event(user, 1)));
  // the gap in offsets: the 90 records and the transaction markers around them
  const [committed] = await admin.listConsumerGroupOffsets({ groups: [group] });
  const committedAt = new Map(committed!.topics.find((topic) => topic.name === names.topic.transactions)!.partitions.map((p) => [p.partitionIndex, Number(p.committedOffset)]));
  const [ends] = await admin.listOffsets({ topics: [{ name: names.topic.transactions, partitions: PARTITIONS.map((partitionIndex) => ({ partitionIndex, timestamp: -1n })) }] });
  const gap = ends!.partitions.reduce((sum, p) => sum + Number(p.offset) - (committedAt.get(p.partitionIndex) ?? 0), 0);
  assert.ok(gap >= 90, `the gap holds the 90 records (${gap} offsets)`);
  await admin.deleteRecords({ topics: [{ name: names.topic.transactions, partitions: PARTITIONS.map((partition) => ({ partition, offset: -1n })) }] });
  await producer.send(Array.from({ length: 12 }, (_, user) => event(user, 2)));

  const second = job('transactions-ml-features-job');
  await second.start();
  await waitFor('the 12 records after the gap counted', async () => ((await countsEmitted()) >= 72 ? true : undefined));
  assert.equal(await countsEmitted(), 72, 'the deleted records were never counted');
  assert.equal(await deletedUnread(), gap, 'every offset deleted unread is counted, once');
});
