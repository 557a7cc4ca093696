import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { writeUserFeatures } from '../../features/online-store.ts';
import { config, onCleanup, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const run = (args: string[]) => spawnSync('pnpm', ['--silent', 'run', ...args], { cwd: repoRoot, encoding: 'utf8' });

test('pnpm run sql answers the shipped queries in table, csv and json; pnpm run features prints JSON', { timeout: 300_000 }, async (t) => {
  const { namespace, names, redis, query, job } = await setupPipeline(t, 'sql');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const now = Date.UTC(2026, 10, 20, 15);
  await producer.send(Array.from({ length: 500 }, createTransactionGenerator({ users: 30, seed: 9, spreadDays: 2, now })));
  for (const name of ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-counts-lake-sink']) {
    await job(name, { flushIntervalMs: 500 }).start();
  }
  await waitFor('500 rows in both tables', async () => {
    const [row] = await query<{ a: string; b: string }>('SELECT (SELECT count(*) FROM transactions) AS a, (SELECT count(*) FROM user_transaction_counts) AS b');
    return Number(row!.a) === 500 && Number(row!.b) === 500 ? true : undefined;
  });

  const perUser = run(['sql', '--', '-f', 'sql/total-per-user.sql', '--namespace', namespace, '--format', 'json']);
  assert.equal(perUser.status, 0, perUser.stderr);
  const totals = JSON.parse(perUser.stdout) as Array<{ user_id: number; total_transactions: number }>;
  assert.equal(totals.reduce((sum, row) => sum + Number(row.total_transactions), 0), 500);

  const duplicates = run(['sql', '--', '-f', 'sql/duplicates.sql', '--namespace', namespace]);
  assert.equal(duplicates.status, 0, duplicates.stderr);
  assert.match(duplicates.stdout, /\(0 rows\)/);

  const daily = run(['sql', '--', '-f', 'sql/daily-volume-by-currency.sql', '--namespace', namespace, '--format', 'csv']);
  assert.equal(daily.status, 0, daily.stderr);
  const [header, ...lines] = daily.stdout.trim().split('\n');
  assert.equal(header, 'dt,currency,transactions,debits,credits,debit_amount,credit_amount');
  assert.equal(lines.reduce((sum, line) => sum + Number(line.split(',')[2]), 0), 500);

  // As of the earliest event, each user counted at most what had happened by then.
  const asOf = run(['sql', '--', '-f', 'sql/features-as-of.sql', '--namespace', namespace, '--format', 'json', '--set', `as_of=${now}`]);
  assert.equal(asOf.status, 0, asOf.stderr);
  const latest = JSON.parse(asOf.stdout) as Array<{ user_id: number; total_transactions_count: number }>;
  const byUser = new Map(totals.map((row) => [Number(row.user_id), Number(row.total_transactions)]));
  assert.equal(latest.length, byUser.size);
  for (const row of latest) assert.equal(Number(row.total_transactions_count), byUser.get(Number(row.user_id)), 'as of now: the full count');
  const early = run(['sql', '--', '-f', 'sql/features-as-of.sql', '--namespace', namespace, '--format', 'json', '--set', `as_of=${now - 24 * 3600 * 1000}`]);
  const earlier = JSON.parse(early.stdout) as Array<{ total_transactions_count: number }>;
  assert.ok(earlier.reduce((s, r) => s + Number(r.total_transactions_count), 0) < 500, 'a day earlier: fewer transactions');

  const bad = run(['sql', '--', 'SELECT nope FROM transactions', '--namespace', namespace]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /sql: .*nope/);

  await writeUserFeatures(redis, [{ user_id: 42, total_transactions_count: 3, updated_at: 1000 }], names.features.userTransactionCounts.redisPrefix);
  const features = run(['features', '--', 'user', '42', '7', '--namespace', namespace]);
  assert.equal(features.status, 0, features.stderr);
  assert.deepEqual(JSON.parse(features.stdout), { 42: { user_id: 42, total_transactions_count: 3, updated_at: 1000 }, 7: null });
});

test('pnpm run sql --as-of reads every table as it was at a time: the rows committed before it, none after', { timeout: 300_000 }, async (t) => {
  const { namespace, names, query, job } = await setupPipeline(t, 'sql-as-of');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const next = createTransactionGenerator({ users: 30, seed: 10, spreadDays: 0 });
  const before = new Date(Date.now() - 1_000).toISOString();
  await job('transactions-job-backup', { flushIntervalMs: 500 }).start();
  await producer.send(Array.from({ length: 300 }, next));
  await waitFor('300 rows', async () => (Number((await query<{ n: string }>('SELECT count(*) AS n FROM transactions'))[0]!.n) === 300 ? true : undefined));
  // Nessie's commit times have second precision at best: keep the two commits apart
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const between = new Date().toISOString();
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  await producer.send(Array.from({ length: 200 }, next));
  await waitFor('500 rows', async () => (Number((await query<{ n: string }>('SELECT count(*) AS n FROM transactions'))[0]!.n) === 500 ? true : undefined));

  const countAt = (asOf?: string) => {
    const result = run(['sql', '--', 'SELECT count(*) AS n FROM transactions', '--namespace', namespace, '--format', 'json', ...(asOf ? ['--as-of', asOf] : [])]);
    assert.equal(result.status, 0, result.stderr);
    return Number((JSON.parse(result.stdout) as Array<{ n: number }>)[0]!.n);
  };
  assert.equal(countAt(between), 300, 'as of the moment between the two commits');
  assert.equal(countAt(), 500, 'now');
  assert.equal(countAt(before), 0, 'before the table had a row (or existed)');
});
