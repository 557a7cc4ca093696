import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KafkaJS } from '@confluentinc/kafka-javascript';
import { avroCodec, createAvroDecoder } from '../../core/avro.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { registerAvro } from '../../core/registry.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../core/config.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

test('features job: changelog records of an older schema version restore with their own schema after the schema evolved', { timeout: 180_000 }, async (t) => {
  const { names, registry, job } = await setupPipeline(t, 'restore-v2');
  const counts = names.topic.userTransactionCounts;
  const v1Codec = await avroCodec(registry, await registry.getLatestSchemaId(`${counts}-value`));
  const raw = createProducer(config, 'lakestream-test-raw');
  await raw.connect();
  onCleanup(t, () => raw.disconnect());
  const transactions = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => transactions.close());
  const event = { user_id: 7, transaction_timestamp_millis: 1_700_000_000_000, amount: -3, currency: 'EUR', counterpart_id: 9 };
  await transactions.send([event]);
  const partition = await partitionOf(names.topic.transactions, '7');
  // The changelog as the v1 job left it: user 7 has 41 transactions.
  await raw.send({ topic: counts, messages: [{ key: '7', partition, value: v1Codec.encode({ user_id: 7, total_transactions_count: 41, event_timestamp_millis: 1 }) }] });
  // Then the schema evolves: a new optional field first, so v1 bytes read with v2 are misread.
  const v1 = JSON.parse(readFileSync(join(repoRoot, 'schemas', 'user-transaction-counts-value.avsc'), 'utf8'));
  const v2 = { ...v1, fields: [{ name: 'source', type: ['null', 'string'], default: null }, ...v1.fields] };
  await registerAvro(registry, `${counts}-value`, JSON.stringify(v2));

  // The job writes with the latest schema (v2); its restore must read each record with the id it carries.
  const features = job('transactions-ml-features-job');
  await features.start();
  const decode = createAvroDecoder(registry);
  const seen: Array<Record<string, unknown>> = [];
  const reader = createConsumer(config, uniqueName('counts-reader'));
  await reader.connect();
  onCleanup(t, () => reader.disconnect());
  await reader.subscribe({ topics: [counts] });
  await reader.run({ eachMessage: async ({ message }) => void seen.push((await decode(message.value)).value) });
  const emitted = await waitFor('the job to count the new transaction', async () => seen.find((value) => Number(value.total_transactions_count) !== 41));
  assert.equal(Number(emitted.total_transactions_count), 42, 'restored 41 from the v2 record, then counted one more');
  assert.equal(Number(emitted.user_id), 7);
  assert.ok((features.stats() as unknown as { stores: { counts: { restored: number } } }).stores.counts.restored >= 1, 'the store restored from the changelog');

  async function partitionOf(topic: string, key: string): Promise<number> {
    const consumer = createConsumer(config, uniqueName('partition-probe'));
    await consumer.connect();
    onCleanup(t, () => consumer.disconnect());
    await consumer.subscribe({ topics: [topic] });
    let found: number | undefined;
    await consumer.run({ eachMessage: async ({ partition, message }: KafkaJS.EachMessagePayload) => void (message.key?.toString() === key && (found = partition)) });
    return waitFor(`the partition of key ${key}`, async () => found);
  }
});
