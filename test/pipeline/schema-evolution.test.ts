import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { registerAvro } from '../../core/registry.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, waitFor } from '../helpers.ts';
import { setupPipeline } from './fixture.ts';
import { createTopicProducer } from '../../ingest/topic-producer.ts';
import { loadTableState } from '../../core/iceberg/table.ts';

const v1 = JSON.parse(readFileSync(join(repoRoot, 'schemas', 'transactions-value.avsc'), 'utf8'));

test('a backward-compatible v2 is archived beside v1 and the lake reads both; an incompatible schema is refused', { timeout: 300_000 }, async (t) => {
  const { names, registry, query, job } = await setupPipeline(t, 'evolve');
  const subject = `${names.topic.transactions}-value`;
  const producerV1 = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producerV1.close());

  const v2 = { ...v1, fields: [...v1.fields, { name: 'channel', type: ['null', 'string'], default: null, doc: 'Where the transaction was initiated.' }] };
  const v2Id = await registerAvro(registry, subject, JSON.stringify(v2));
  assert.notEqual(v2Id, producerV1.schemaId);
  const producerV2 = await createTransactionsProducer(config, { topic: names.topic.transactions, schemaId: v2Id });
  onCleanup(t, () => producerV2.close());

  const next = createTransactionGenerator({ users: 40, seed: 11, spreadDays: 0 });
  await producerV1.send(Array.from({ length: 100 }, next));
  await producerV2.send(Array.from({ length: 100 }, () => ({ ...next(), channel: 'web' })));

  const sink = job('transactions-job-backup', { flushIntervalMs: 500 });
  await sink.start();
  await waitFor('200 rows', async () => {
    const [row] = await query<{ n: string }>('SELECT count(*) AS n FROM transactions');
    return Number(row!.n) === 200 ? true : undefined;
  });
  const [mix] = await query<{ total: string; with_channel: string; web: string }>(
    `SELECT count(*) AS total, count(channel) AS with_channel, count(*) FILTER (WHERE channel = 'web') AS web FROM transactions`,
  );
  assert.deepEqual({ total: Number(mix!.total), withChannel: Number(mix!.with_channel), web: Number(mix!.web) }, { total: 200, withChannel: 100, web: 100 });

  const incompatible = { ...v1, fields: v1.fields.map((f: { name: string }) => (f.name === 'user_id' ? { name: 'user_id', type: 'string' } : f)) };
  await assert.rejects(registerAvro(registry, subject, JSON.stringify(incompatible)), (error: Error & { status?: number }) => {
    assert.equal(error.status, 409);
    assert.match(error.message, /[Ii]ncompatible/);
    return true;
  });
});

test('int→long widens the Iceberg column in the commit that needs it; a record whose schema the table cannot hold is dead-lettered and the sink goes on', { timeout: 300_000 }, async (t) => {
  const { names, registry, query, job, admin, context } = await setupPipeline(t, 'widen');
  const topic = names.topic.userTransactionCounts;
  const v1Counts = JSON.parse(readFileSync(join(repoRoot, 'schemas', 'user-transaction-counts-value.avsc'), 'utf8'));
  const v1Id = await registerAvro(registry, `${topic}-value`, JSON.stringify(v1Counts));
  const widened = { ...v1Counts, fields: v1Counts.fields.map((f: { name: string }) => (f.name === 'user_id' ? { ...f, type: 'long' } : f)) };
  const widenedId = await registerAvro(registry, `${topic}-value`, JSON.stringify(widened));
  // a schema of another subject, so the registry's compatibility rule never saw it: user_id a string
  const foreign = { ...v1Counts, fields: v1Counts.fields.map((f: { name: string }) => (f.name === 'user_id' ? { name: 'user_id', type: 'string' } : f)) };
  const foreignId = await registerAvro(registry, `${topic}-foreign-value`, JSON.stringify(foreign));
  const declared = { name: topic, key: 'user_id' };
  const producers = await Promise.all([v1Id, widenedId, foreignId].map((schemaId) => createTopicProducer(config, declared, { schemaId })));
  onCleanup(t, () => Promise.all(producers.map((p) => p.close())));
  const at = Date.UTC(2026, 10, 20, 9);
  const rows = (from: number, n: number, id: (i: number) => number | string) =>
    Array.from({ length: n }, (_, i) => ({ user_id: id(from + i), total_transactions_count: from + i + 1, event_timestamp_millis: at + from + i }));
  await producers[0]!.send(rows(0, 100, (i) => i));
  await producers[2]!.send(rows(100, 5, (i) => `user-${i}`));
  await producers[1]!.send(rows(200, 100, (i) => 3_000_000_000 + i));

  const sink = job('user-transaction-counts-lake-sink', { flushIntervalMs: 300 });
  await sink.start();
  await waitFor('200 rows', async () => {
    const [row] = await query<{ n: string }>('SELECT count(*) AS n FROM user_transaction_counts');
    return Number(row!.n) === 200 ? true : undefined;
  });
  const [figures] = await query<{ small: string; big: string; top: string }>(
    'SELECT count(*) FILTER (WHERE user_id < 100) AS small, count(*) FILTER (WHERE user_id >= 3000000000) AS big, max(user_id) AS top FROM user_transaction_counts',
  );
  assert.deepEqual({ small: Number(figures!.small), big: Number(figures!.big), top: String(figures!.top) }, { small: 100, big: 100, top: '3000000299' });
  const state = (await loadTableState(context.lakeTables(), names.tables.userTransactionCounts.iceberg))!;
  assert.equal(state.schema.fields.find((f) => f.name === 'user_id')?.type, 'long', 'the column widened in place');
  assert.equal(state.schema.fields.find((f) => f.name === 'user_id')?.id, 1, 'and kept its field id');

  const dlq = names.deadLetterTopic(topic);
  const ends = await admin.listOffsets({ topics: [{ name: dlq, partitions: [{ partitionIndex: 0, timestamp: -1n }] }] });
  assert.equal(Number(ends[0]!.partitions[0]!.offset), 5, 'the five records of the foreign schema are dead letters');
});
