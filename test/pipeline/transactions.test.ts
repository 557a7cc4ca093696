import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { getUserFeatures, readFeatures } from '../../features/online-store.ts';
import { windowColumns } from '../../core/windows.ts';
import { transactionWindows } from '../../platform/catalog.ts';
import { config, onCleanup, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from './fixture.ts';

const TOTAL = 50_000;

test('exactly-once through kill -9: lake, features table and Redis agree on every user', { timeout: 600_000 }, async (t) => {
  const { namespace, names, redis, query, waitForCount } = await setupPipeline(t, 'eos');
  const jobArgs = ['--namespace', namespace, '--flush-interval-ms', '1000', '--flush-rows', '5000'];
  const startBackup = () => spawnJobs(t, ['transactions-job-backup'], jobArgs);
  const startFeatures = () => spawnJobs(t, ['transactions-ml-features-job'], jobArgs);
  spawnJobs(t, ['user-transaction-counts-lake-sink', 'user-transaction-counts-redis-sink', 'user-transaction-windows-redis-sink'], jobArgs);
  let backup = startBackup();
  let features = startFeatures();

  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  // three days of history, oldest first: none late for the windows
  const next = createTransactionGenerator({ users: 2_000, seed: 20261121, spreadDays: 3, records: TOTAL });
  const produceSome = async (count: number) => {
    for (let sent = 0; sent < count; sent += 2_500) {
      const outcome = await producer.send(Array.from({ length: Math.min(2_500, count - sent) }, next));
      assert.equal(outcome.refused.length, 0);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  await produceSome(20_000);
  // Both jobs are mid-stream: part of the input is archived and counted, part is not.
  await waitForCount('transactions', 1);
  await Promise.all([backup.kill9(), features.kill9()]);
  await produceSome(15_000);
  backup = startBackup();
  features = startFeatures();
  await produceSome(10_000);
  // Second crash, this time while the restarted jobs restore and catch up.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await Promise.all([backup.kill9(), features.kill9()]);
  backup = startBackup();
  features = startFeatures();
  await produceSome(TOTAL - 45_000);

  const archived = await waitForCount('transactions', TOTAL, 240_000, 2_000);
  assert.equal(archived, TOTAL, 'exactly N rows archived');
  const duplicates = await query('SELECT user_id, transaction_timestamp_millis, amount, currency, counterpart_id FROM transactions GROUP BY ALL HAVING count(*) > 1');
  assert.equal(duplicates.length, 0, 'no duplicate rows');
  const [positions] = await query<{ n: string; unpositioned: string }>('SELECT count(DISTINCT (_kafka_partition, _kafka_offset)) AS n, count(*) FILTER (WHERE _kafka_offset IS NULL) AS unpositioned FROM transactions');
  assert.deepEqual([Number(positions!.n), Number(positions!.unpositioned)], [TOTAL, 0], 'every row keeps the Kafka position it was read at, each position once');

  const featureRows = await waitForCount('user_transaction_counts', TOTAL, 240_000, 2_000);
  assert.equal(featureRows, TOTAL, 'one feature row per transaction event');
  const [distinct] = await query<{ n: string }>('SELECT count(DISTINCT (user_id, total_transactions_count)) AS n FROM user_transaction_counts');
  assert.equal(Number(distinct!.n), TOTAL, 'every running total appears exactly once');

  const lakeCounts = await query<{ user_id: number; n: string; latest: string }>(`
    SELECT t.user_id, t.n, f.latest
    FROM (SELECT user_id, count(*) AS n FROM transactions GROUP BY user_id) t
    JOIN (SELECT user_id, max(total_transactions_count) AS latest FROM user_transaction_counts GROUP BY user_id) f USING (user_id)
    ORDER BY t.user_id`);
  const [users] = await query<{ n: string }>('SELECT count(DISTINCT user_id) AS n FROM transactions');
  assert.equal(lakeCounts.length, Number(users!.n), 'every user has features');

  const userIds = lakeCounts.map((row) => Number(row.user_id));
  const online = await waitFor('Redis to catch up', async () => {
    const features = await getUserFeatures(redis, userIds, names.features.userTransactionCounts.redisPrefix);
    return features.every((f, i) => f?.total_transactions_count === Number(lakeCounts[i]!.n)) ? features : undefined;
  });
  for (const [i, row] of lakeCounts.entries()) {
    assert.equal(Number(row.latest), Number(row.n), `user ${row.user_id}: features table = lake`);
    assert.equal(online[i]!.total_transactions_count, Number(row.n), `user ${row.user_id}: Redis = lake`);
  }

  // The windows in Redis are each user's settled state: the definition over every archived
  // transaction as of the user's newest. A batch applied twice after a kill would inflate them.
  const windowsFeature = names.features.userTransactionWindows;
  const sent = await query<{ user_id: number; t: string; amount: number }>('SELECT user_id, transaction_timestamp_millis AS t, amount FROM transactions');
  const byUser = new Map<number, Array<{ t: number; amount: number }>>();
  for (const row of sent) {
    const list = byUser.get(Number(row.user_id)) ?? [];
    list.push({ t: Number(row.t), amount: Number(row.amount) });
    byUser.set(Number(row.user_id), list);
  }
  const windowsOnline = await waitFor('the windows in Redis to catch up', async () => {
    const rows = await readFeatures(redis, windowsFeature, userIds);
    return rows.every((row, i) => Number(row?.events) === Number(lakeCounts[i]!.n)) ? rows : undefined;
  });
  const tile = transactionWindows.tileMs;
  for (const [i, id] of userIds.entries()) {
    const mine = byUser.get(id)!;
    const newest = Math.max(...mine.map((e) => e.t));
    const row = windowsOnline[i]!;
    assert.equal(row.updated_at, newest, `user ${id}: as of the newest transaction`);
    for (const column of windowColumns(transactionWindows, 'amount')) {
      const first = Math.floor(newest / tile) - column.window / tile + 1;
      const inside = mine.filter((e) => Math.floor(e.t / tile) >= first).map((e) => e.amount);
      const expected = { count: inside.length, sum: inside.reduce((a, b) => a + b, 0), min: inside.length ? Math.min(...inside) : null, max: inside.length ? Math.max(...inside) : null }[column.aggregate];
      if (column.aggregate === 'sum') assert.ok(Math.abs(Number(row[column.name]) - expected!) < 1e-6, `user ${id} ${column.name}: ${row[column.name]} vs ${expected}`);
      else assert.equal(row[column.name], expected, `user ${id} ${column.name}`);
    }
  }
});
