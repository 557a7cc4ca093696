import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KafkaJS } from '@confluentinc/kafka-javascript';
import { avroCodec } from '../../core/avro.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { getUserFeatures } from '../../features/online-store.ts';
import { config, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

test('Redis sink: an undecodable feature record goes to its dead-letter topic and the sink goes on', { timeout: 180_000 }, async (t) => {
  const { names, registry, redis, job } = await setupPipeline(t, 'redis-dlq');
  const topic = names.topic.userTransactionCounts;
  const codec = await avroCodec(registry, await registry.getLatestSchemaId(`${topic}-value`));
  const raw = createProducer(config, 'lakestream-test-raw');
  await raw.connect();
  onCleanup(t, () => raw.disconnect());
  const update = (userId: number, count: number) => ({
    key: String(userId),
    value: codec.encode({ user_id: userId, total_transactions_count: count, event_timestamp_millis: 1_000 + count }),
  });
  const poison = { key: '2', value: Buffer.from('definitely not avro'), headers: { kind: 'garbage' } };
  // Same key, so the same partition and in this order: 1's first update, the poison, then more.
  await raw.send({ topic, messages: [update(1, 1), { ...poison, key: '1' }, update(1, 2), update(3, 7)] });

  const sink = job('user-transaction-counts-redis-sink');
  await sink.start();
  const prefix = names.features.userTransactionCounts.redisPrefix;
  const features = await waitFor('both users in Redis', async () => {
    const found = await getUserFeatures(redis, [1, 3], prefix);
    return found.every(Boolean) && found[0]!.total_transactions_count === 2 ? found : undefined;
  });
  assert.deepEqual(features, [
    { user_id: 1, total_transactions_count: 2, updated_at: 1_002 },
    { user_id: 3, total_transactions_count: 7, updated_at: 1_007 },
  ]);

  const letters: KafkaJS.Message[] = [];
  const reader = createConsumer(config, uniqueName('dlq-reader'));
  await reader.connect();
  onCleanup(t, () => reader.disconnect());
  await reader.subscribe({ topics: [names.deadLetterTopic(topic)] });
  await reader.run({ eachMessage: async ({ message }) => void letters.push(message) });
  await waitFor('the dead letter', async () => (letters.length ? true : undefined));
  const header = (name: string) => letters[0]!.headers?.[name]?.toString();
  assert.equal(letters.length, 1);
  assert.deepEqual(letters[0]!.value, poison.value, 'original bytes kept');
  assert.equal(header('kind'), 'garbage', 'original headers kept');
  assert.equal(header('dlq.reason'), 'magic-byte');
  assert.equal(header('dlq.source.topic'), topic);
  assert.equal(header('dlq.job'), names.features.userTransactionCounts.redisSinkGroup);
  assert.deepEqual(sink.stats().deadLetters, { 'magic-byte': 1 });
});
