import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, runCliFile } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const DAY = Date.UTC(2026, 10, 19);

/**
 * Point-in-time training rows from the lake against brute force: for each (user, time) row, the
 * user's transaction count as of that time is the number of their transactions at or before it,
 * counted from what was sent; none before their first.
 */
test('features training-set: each entity row gets the feature value as of its timestamp, never a later one', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'training-set');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  // 20 users, 30 transactions each at their own minutes of the day, sent in time order
  const sent = Array.from({ length: 600 }, (_, i) => ({ user_id: i % 20, transaction_timestamp_millis: DAY + 3_600_000 + i * 60_000 + (i % 20) * 1_000, amount: 1 + i, currency: 'EUR', counterpart_id: i }));
  await producer.send(sent);
  const jobs = ['transactions-ml-features-job', 'user-transaction-counts-lake-sink'].map((name) => pipeline.job(name, { flushIntervalMs: 500 }));
  for (const job of jobs) await job.start();
  await pipeline.waitForCount('user_transaction_counts', sent.length);
  for (const job of jobs) await job.stop();

  // entity rows: before any transaction, exactly at one, between two, after the last, a user with none
  const rows: Array<{ user_id: number; at: number; label: number }> = [];
  for (let k = 0; k < 60; k++) {
    const user = k % 21;
    // user 20 has no transactions; sent[user + 20 j] is the user's own (j + 1)-th
    const own = sent[(user % 20) + 20 * (k % 30)]!.transaction_timestamp_millis;
    const at = k % 5 === 0 ? DAY : k % 5 === 1 ? own : DAY + 3_600_000 + ((k * 7919) % (700 * 60_000));
    rows.push({ user_id: user, at, label: k % 2 });
  }
  const expected = rows.map((row) => {
    const n = sent.filter((s) => s.user_id === row.user_id && s.transaction_timestamp_millis <= row.at).length;
    return `${row.user_id},${new Date(row.at).toISOString()},${row.label},${n || ''}`;
  });
  const dir = mkdtempSync(join(tmpdir(), 'training-set-'));
  const entities = join(dir, 'entities.csv');
  writeFileSync(entities, `user_id,event_timestamp,label\n${rows.map((row) => `${row.user_id},${new Date(row.at).toISOString().replace('T', ' ').replace('Z', '')},${row.label}`).join('\n')}\n`);
  const out = join(dir, 'training.csv');
  const result = await runCliFile('features/cli.ts', ['training-set', '--namespace', pipeline.namespace, '--entities', entities, '--out', out], {}, 120_000);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /training-set: 60 rows written to .*training\.csv \(features found: user_transaction_counts for \d+\)/);
  const [header, ...lines] = readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(header, 'user_id,event_timestamp,label,total_transactions_count');
  // DuckDB writes the timestamps back in its own format: compared as instants
  const actual = lines.map((line) => {
    const [user, at, label, count] = line.split(',');
    return `${user},${new Date(`${at!.replace(' ', 'T')}Z`.replace(/\+00Z$/, 'Z')).toISOString()},${label},${count}`;
  });
  assert.deepEqual(actual, expected);
  assert.ok(expected.some((line) => line.endsWith(',')) && expected.some((line) => !line.endsWith(',')), 'the rows cover both: no value yet, and a value');

  const refused = await runCliFile('features/cli.ts', ['training-set', '--namespace', pipeline.namespace, '--entities', entities, '--out', out, '--feature', 'user_transaction_counts:nope'], {}, 60_000);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /--feature user_transaction_counts:nope: user_transaction_counts has no feature nope \(it has total_transactions_count\)/);
});
