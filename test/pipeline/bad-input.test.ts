import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KafkaJS } from '@confluentinc/kafka-javascript';
import { avroCodec } from '../../core/avro.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { setupPipeline } from './fixture.ts';

test('bad input goes to the DLQ with its reason and original bytes; the records around it arrive', { timeout: 300_000 }, async (t) => {
  const { namespace, names, registry, query, job } = await setupPipeline(t, 'dlq');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const raw = createProducer(config, 'lakestream-test-raw');
  await raw.connect();
  onCleanup(t, () => raw.disconnect());
  const codec = await avroCodec(registry, producer.schemaId);
  const next = createTransactionGenerator({ users: 50, seed: 3, spreadDays: 0 });

  const valid = codec.encode(next());
  const bad: Record<string, Buffer> = {
    'magic-byte': Buffer.from('not avro at all'),
    'unknown-schema': Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0, 2, 4, 6]),
    'corrupt-body': valid.subarray(0, valid.length - 3),
    invalid: codec.encode({ ...next(), currency: 'EURO' }),
  };
  await producer.send(Array.from({ length: 10 }, next));
  await raw.send({ topic: names.topic.transactions, messages: Object.entries(bad).map(([kind, value]) => ({ key: '7', value, headers: { kind } })) });
  await producer.send(Array.from({ length: 10 }, next));

  const started = [];
  for (const name of ['transactions-job-backup', 'transactions-ml-features-job']) {
    const created = job(name, { flushIntervalMs: 500 });
    await created.start();
    started.push(created);
  }
  const features = started[1]!;

  await waitFor('20 valid rows in the lake', async () => {
    const [row] = await query<{ n: string }>('SELECT count(*) AS n FROM transactions');
    return Number(row!.n) === 20 ? true : undefined;
  });

  const letters: KafkaJS.Message[] = [];
  const dlqConsumer = createConsumer(config, uniqueName('dlq-reader'));
  await dlqConsumer.connect();
  onCleanup(t, () => dlqConsumer.disconnect());
  await dlqConsumer.subscribe({ topics: [names.deadLetterTopic(names.topic.transactions)] });
  await dlqConsumer.run({ eachMessage: async ({ message }) => void letters.push(message) });
  await waitFor('8 dead letters (4 from each job)', async () => (letters.length >= 8 ? true : undefined));

  const header = (message: KafkaJS.Message, name: string) => message.headers?.[name]?.toString();
  for (const job of [`${namespace}.transactions-job-backup`, `${namespace}.transactions-ml-features-job`]) {
    const mine = letters.filter((message) => header(message, 'dlq.job') === job);
    assert.equal(mine.length, 4, `${job} dead-lettered each bad record once`);
    for (const message of mine) {
      const kind = header(message, 'kind')!;
      assert.deepEqual(message.value, bad[kind], `${kind}: original bytes kept`);
      assert.equal(header(message, 'dlq.reason'), kind);
      assert.equal(header(message, 'dlq.source.topic'), names.topic.transactions);
      assert.match(header(message, 'dlq.source.partition') ?? '', /^\d+$/);
      assert.match(header(message, 'dlq.source.offset') ?? '', /^\d+$/);
      assert.ok(!Number.isNaN(Date.parse(header(message, 'dlq.time') ?? '')));
      if (kind === 'invalid') assert.match(header(message, 'dlq.error') ?? '', /currency: must be three upper-case letters/);
      if (kind === 'unknown-schema') assert.match(header(message, 'dlq.error') ?? '', /unknown schema id/);
    }
  }
  await waitFor('the features job to count the 20 valid transactions', async () =>
    (features.stats() as unknown as { emitted: number }).emitted === 20 ? true : undefined,
  );
  assert.deepEqual((features.stats() as { deadLetters: Record<string, number> }).deadLetters, {
    'magic-byte': 1,
    'unknown-schema': 1,
    'corrupt-body': 1,
    invalid: 1,
  });
});
