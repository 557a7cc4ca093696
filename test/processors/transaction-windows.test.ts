import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message } from '@confluentinc/kafka-javascript';
import { createAvroDecoder } from '../../core/avro.ts';
import { readPartitionsToEnd } from '../../core/changelog.ts';
import { readFeatures } from '../../features/online-store.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const MINUTE = 60_000;
const T = Date.UTC(2026, 11, 1, 12, 0);
const PARTITIONS = [0, 1, 2, 3, 4, 5];

test("windowed features: out-of-order transactions within the allowed lateness count, later ones are dead-lettered as late, and the partition's stream time survives a restart", { timeout: 240_000 }, async (t) => {
  const { names, registry, redis, job } = await setupPipeline(t, 'windows');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const transaction = (minutes: number, amount: number) => ({ user_id: 7, transaction_timestamp_millis: T + minutes * MINUTE, amount, currency: 'EUR', counterpart_id: 9 });
  const decode = createAvroDecoder(registry);
  const read = async (topic: string, partitions = PARTITIONS) => {
    const messages: Message[] = [];
    await readPartitionsToEnd(config, topic, partitions, (message) => void messages.push(message));
    return messages;
  };
  const windows = async () => Promise.all((await read(names.topic.userTransactionWindows)).map(async (message) => (await decode(message.value)).value));
  const header = (message: Message, name: string) => message.headers?.flatMap((h) => Object.entries(h)).find(([key]) => key === name)?.[1]?.toString();

  let features = job('transactions-ml-features-job');
  const redisSink = job('user-transaction-windows-redis-sink');
  await Promise.all([features.start(), redisSink.start()]);
  // 20 min first, then 12 and 11 (8 and 9 min behind: on time), then 5 (15 min behind: late)
  await producer.send([transaction(0, -1), transaction(20, -2), transaction(12, -3), transaction(5, -4), transaction(11, -5)]);
  const first = await waitFor('four windowed updates', async () => ((await windows()).length >= 4 ? windows() : undefined), 60_000, 500);
  assert.equal(first.length, 4, 'one update per transaction on time, none for the late one');
  const last = first.find((value) => Number(value.events) === 4)!;
  assert.equal(Number(last.windows_as_of), T + 20 * MINUTE, 'as of the newest, not of the last to arrive');
  assert.deepEqual(
    { count: Number(last.count_1h), sum: last.amount_sum_1h, min: last.amount_min_1h, max: last.amount_max_1h, count7d: Number(last.count_7d) },
    { count: 4, sum: -11, min: -5, max: -1, count7d: 4 },
  );
  const letters = await waitFor('the late transaction in the dead-letter topic', async () => {
    const all = await read(names.deadLetterTopic(names.topic.transactions), [0]);
    return all.length ? all : undefined;
  });
  assert.equal(letters.length, 1);
  assert.equal(header(letters[0]!, 'dlq.reason'), 'late');
  assert.equal(header(letters[0]!, 'dlq.job'), names.group('transactions-ml-features-job'));
  assert.match(header(letters[0]!, 'dlq.error')!, /transaction_timestamp_millis 2026-12-01T12:05:00.000Z of user 7 is 900 s older than its partition's newest \(2026-12-01T12:20:00.000Z\), past the allowed lateness of 600 s/);
  assert.equal(Number((await decode(letters[0]!.value)).value.amount), -4, 'the letter holds the record as sent');
  const counts = (await Promise.all((await read(names.topic.userTransactionCounts)).map(async (message) => Number((await decode(message.value)).value.total_transactions_count)))).sort();
  assert.deepEqual(counts, [1, 2, 3, 4, 5], 'the all-time count still counts the late one');

  // A new process restores the tiles and the stream time from the changelog: 19 min behind the
  // restored newest is late, which a stream time lost in the restart would let through.
  await features.stop();
  features = job('transactions-ml-features-job');
  await features.start();
  await producer.send([transaction(1, -7), transaction(120, -6)]);
  const after = await waitFor('the update after the restart', async () => (await windows()).find((value) => Number(value.events) === 5), 60_000, 500);
  assert.equal(Number(after.windows_as_of), T + 120 * MINUTE);
  assert.deepEqual(
    { count1h: Number(after.count_1h), sum1h: after.amount_sum_1h, count24h: Number(after.count_24h), sum24h: after.amount_sum_24h, min24h: after.amount_min_24h, max24h: after.amount_max_24h },
    { count1h: 1, sum1h: -6, count24h: 5, sum24h: -17, min24h: -6, max24h: -1 },
    'the restored tiles plus the new transaction; the 1 h window has moved past the first hour',
  );
  assert.equal((await read(names.deadLetterTopic(names.topic.transactions), [0])).length, 2, 'the record 19 min behind the restored stream time is late');
  assert.ok((features.stats() as unknown as { stores: { windows: { restored: number } } }).stores.windows.restored >= 1, 'the windows store restored from its changelog');

  // online: the latest values, as of the event time they are valid at
  const feature = names.features.userTransactionWindows;
  const online = await waitFor('the windows in Redis', async () => {
    const [row] = await readFeatures(redis, feature, [7]);
    return row && Number(row.events) === 5 ? row : undefined;
  });
  assert.equal(online.updated_at, T + 120 * MINUTE);
  assert.equal(online.count_1h, 1);
  assert.equal(online.amount_sum_24h, -17);
  assert.equal(online.amount_min_7d, -6);
  assert.equal(await redis.hget(names.features.userTransactionCounts.redisPrefix + '7', 'updated_at'), null, "the windows' hash is not the counts' (no counts sink runs here)");
});
