import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readPartitionsToEnd } from '../../core/changelog.ts';
import { liveFiles, loadTableState } from '../../core/iceberg/table.ts';
import { checkWindows } from '../../features/check.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { transactionWindows } from '../../platform/catalog.ts';
import { config, onCleanup, runCliFile, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const TOTAL = 6_000;

test('features check and backfill: the windows the stream emitted and served equal the declaration recomputed by DuckDB over the lake, 100% on data with out-of-order and late records; the backfill rebuilds the same rows, storage only', { timeout: 500_000 }, async (t) => {
  const { namespace, names, redis, query, context } = await setupPipeline(t, 'windows-check');
  spawnJobs(t, ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-windows-lake-sink', 'user-transaction-windows-redis-sink'], ['--namespace', namespace, '--flush-interval-ms', '1000']);
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  // a day of history, oldest first, records up to 20 min behind the front: past the 10 min
  // allowed, some are late, the others arrive out of order within it
  const next = createTransactionGenerator({ users: 60, seed: 12, spreadDays: 1, records: TOTAL, disorderMs: 20 * 60_000 });
  for (let sent = 0; sent < TOTAL; sent += 1_000) assert.equal((await producer.send(Array.from({ length: 1_000 }, next))).refused.length, 0);

  const lateLetters = async () => {
    let late = 0;
    await readPartitionsToEnd(config, names.deadLetterTopic(names.topic.transactions), [0], (message) => {
      if (message.headers?.some((header) => header['dlq.reason']?.toString() === 'late')) late++;
    });
    return late;
  };
  const rows = async (view: string) => Number((await query<{ n: string }>(`SELECT count(*) AS n FROM ${view}`))[0]!.n);
  const late = await waitFor(
    'every transaction archived, and windowed or dead-lettered as late',
    async () => {
      const dead = await lateLetters();
      return (await rows('transactions')) === TOTAL && (await rows('user_transaction_windows')) + dead === TOTAL ? dead : undefined;
    },
    240_000,
    2_000,
  );
  assert.ok(late > 100 && late < TOTAL / 3, `some records are late (${late})`);

  const result = await checkWindows(config, namespace, { sample: 1_000, seed: 1, redis });
  assert.deepEqual(result.mismatches, []);
  assert.equal(result.matchRate, 1);
  const users = Number((await query<{ n: string }>('SELECT count(DISTINCT user_id) AS n FROM transactions'))[0]!.n);
  assert.ok(users > 40, `a sample of ${users} users`);
  assert.equal(result.users, users, 'the sample is every user');
  assert.equal(result.compared, TOTAL - late, 'every row the stream emitted compared');
  assert.equal(result.late, late, 'DuckDB calls late the records the stream dead-lettered');
  assert.deepEqual([result.missingFromStream, result.extraInStream, result.unpositioned], [0, 0, 0]);
  await waitFor('Redis to hold every user', async () => ((await checkWindows(config, namespace, { sample: 1_000, seed: 1, redis })).online.matched === users ? true : undefined), 60_000);

  // the check can fail: recomputed with another allowed lateness, rows the stream kept are late
  const stricter = await checkWindows(config, namespace, { sample: 1_000, seed: 1, definition: { ...transactionWindows, allowedLatenessMs: 5 * 60_000 } });
  assert.ok(stricter.extraInStream > 0 && stricter.matchRate < 1, `a stricter lateness is noticed (${JSON.stringify({ ...stricter, mismatches: stricter.mismatches.length })})`);

  const cli = await runCliFile('features/cli.ts', ['check', '--namespace', namespace, '--sample', '10', '--seed', '3'], {}, 120_000);
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stderr, /check: 10 users, \d+ rows compared .* match rate 100\.00%/);
  assert.equal(JSON.parse(cli.stdout).matchRate, 1);

  // The second engine: the windows backfill rebuilds the table from the archived transactions
  // alone. It must give the rows the stream gave, row for row, and leave Redis as it was.
  const tableRows = () => query<Record<string, unknown>>('SELECT * EXCLUDE (dt, hour) FROM user_transaction_windows ORDER BY source_partition, source_offset');
  const liveObjects = async () => {
    const state = (await loadTableState(context.lakeTables(), names.tables.userTransactionWindows.iceberg))!;
    return (await liveFiles(context.lakeTables(), state)).map((entry) => entry.file.path).sort();
  };
  const redisSnapshot = async () => {
    const entries: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      for (const key of keys) entries.push(`${key}=${(await redis.dumpBuffer(key))?.toString('base64')}`);
      cursor = next;
    } while (cursor !== '0');
    return entries.sort();
  };
  const streamed = await tableRows();
  const redisBefore = await redisSnapshot();
  assert.ok(redisBefore.length > 40, 'Redis holds the served windows');
  const backfill = await runCliFile('backfill/cli.ts', ['--namespace', namespace, '--feature', 'windows'], {}, 240_000);
  assert.equal(backfill.status, 0, backfill.stderr);
  assert.match(backfill.stdout, new RegExp(`backfill user_transaction_windows: \\d+ days, [\\d,]+ files and ${(TOTAL - late).toLocaleString('en-US')} rows read`));
  const rebuilt = await tableRows();
  assert.equal(rebuilt.length, streamed.length, 'one row per transaction on time');
  rebuilt.forEach((row, i) => {
    const stream = streamed[i]!;
    for (const [field, value] of Object.entries(stream)) {
      const position = `${stream.source_partition}/${stream.source_offset} ${field}`;
      if (field.includes('_sum_')) assert.ok(Math.abs(Number(row[field]) - Number(value)) <= 1e-9 * Math.max(1, Math.abs(Number(value))), `${position}: ${row[field]} vs ${value}`);
      else assert.equal(row[field], value, position);
    }
  });
  const objects = await liveObjects();
  assert.ok(objects.length > 0 && objects.every((path) => /\/backfill-[0-9a-f]{16}\.parquet$/.test(path)), 'the stream files of the covered days were replaced');
  const again = await runCliFile('backfill/cli.ts', ['--namespace', namespace, '--feature', 'windows'], {}, 240_000);
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(await liveObjects(), objects, `a re-run commits nothing new (first: ${backfill.stdout.trim()}; again: ${again.stdout.trim()})`);
  assert.deepEqual(await redisSnapshot(), redisBefore, 'Redis byte for byte untouched');

  // the check leaves the backfilled rows to the backfill and still compares Redis
  const afterBackfill = await checkWindows(config, namespace, { sample: 1_000, seed: 1, redis });
  assert.equal(afterBackfill.backfilled, TOTAL - late);
  assert.equal(afterBackfill.online.matched, users);
  assert.equal(afterBackfill.matchRate, 1);
});
