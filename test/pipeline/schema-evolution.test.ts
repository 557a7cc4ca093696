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
