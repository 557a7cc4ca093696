import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, waitFor } from '../helpers.ts';
import { liveFiles, loadTableState } from '../../core/iceberg/table.ts';
import { setupPipeline } from '../pipeline/fixture.ts';
import { featureBalance } from '../../backfill/features.ts';

const NOW = Date.UTC(2026, 10, 20, 18);
const TOTAL = 3_000;

/** Transactions of 2026-11-19 sent after that day was archived, `from` ms into the day, a minute apart. */
const late = (count: number, from: number) =>
  Array.from({ length: count }, (_, i) => ({ user_id: 1 + (i % 7), transaction_timestamp_millis: Date.UTC(2026, 10, 19) + from + i * 60_000, amount: 10 + i, currency: 'EUR', counterpart_id: 9 }));

/** A lake with three days of transactions and the streaming features job's output for them. */
async function streamedLake(t: TestContext, label: string) {
  const pipeline = await setupPipeline(t, label);
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  // A backend emits each user's transactions in time order; so does this one.
  const records = Array.from({ length: TOTAL }, createTransactionGenerator({ users: 80, seed: 77, spreadDays: 3, now: NOW })).sort(
    (a, b) => a.transaction_timestamp_millis - b.transaction_timestamp_millis,
  );
  for (let i = 0; i < records.length; i += 500) await producer.send(records.slice(i, i + 500));
  const running = ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-counts-lake-sink'].map((name) => pipeline.job(name, { flushIntervalMs: 500 }));
  for (const job of running) await job.start();
  await waitFor('the streamed history in both tables', async () => {
    const [row] = await pipeline.query<{ a: string; b: string }>('SELECT (SELECT count(*) FROM transactions) a, (SELECT count(*) FROM user_transaction_counts) b');
    return Number(row!.a) === TOTAL && Number(row!.b) === TOTAL ? true : undefined;
  });
  for (const job of running) await job.stop();

  const features = async () =>
    (
      await pipeline.query<{ user_id: number; total_transactions_count: string; event_timestamp_millis: string }>(
        'SELECT user_id, total_transactions_count, event_timestamp_millis FROM user_transaction_counts ORDER BY user_id, total_transactions_count, event_timestamp_millis',
      )
    ).map((row) => `${row.user_id}:${row.total_transactions_count}:${row.event_timestamp_millis}`);
  const lakeTables = pipeline.context.lakeTables();
  /** The feature table's live files (what its current snapshot references), with their sizes. */
  const objects = async () => {
    const state = (await loadTableState(lakeTables, pipeline.names.tables.userTransactionCounts.iceberg))!;
    return (await liveFiles(lakeTables, state)).map((entry) => `${entry.file.path} ${entry.file.sizeBytes}`).sort();
  };
  /** Every key and value of the whole Redis database, serialised. */
  const redisSnapshot = async () => {
    const entries: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await pipeline.redis.scan(cursor, 'COUNT', 1000);
      for (const key of keys) entries.push(`${key}=${(await pipeline.redis.dumpBuffer(key))?.toString('base64')}`);
      cursor = next;
    } while (cursor !== '0');
    return entries.sort();
  };
  const backfill = (...args: string[]) => {
    const result = spawnSync('pnpm', ['--silent', 'run', 'backfill', '--', '--namespace', pipeline.namespace, ...args], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    return result;
  };
  return { ...pipeline, features, objects, redisSnapshot, backfill, streamed: await features() };
}

test('backfill equals the streaming output, adds nothing when re-run, continues totals across --from, never touches Redis', { timeout: 300_000 }, async (t) => {
  const lake = await streamedLake(t, 'backfill');
  assert.equal(lake.streamed.length, TOTAL);
  await lake.redis.set(`${lake.names.features.userTransactionCounts.redisPrefix}sentinel`, 'x');
  const redisBefore = await lake.redisSnapshot();

  const first = lake.backfill();
  assert.match(first.stdout, /backfill user_transaction_counts: 4 days, [\d,]+ files and 3,000 rows read, 3,000 rows in \d+ files written/);
  assert.deepEqual(await lake.features(), lake.streamed, 'backfill output = streaming output, row for row');
  const objects = await lake.objects();
  assert.ok(objects.every((line) => /\/backfill-[0-9a-f]{16}\.parquet /.test(line)), 'the live files of the covered days were replaced');

  lake.backfill();
  assert.deepEqual(await lake.objects(), objects, 'a re-run leaves the same objects');
  assert.deepEqual(await lake.features(), lake.streamed, 'and the same rows');

  const days = [...new Set(objects.map((line) => /dt=(\d{4}-\d{2}-\d{2})/.exec(line)![1]!))].sort();
  assert.equal(days.length, 4, "three days back from 18:00 span four calendar days");
  lake.backfill('--from', days[1]!);
  assert.deepEqual(await lake.features(), lake.streamed, 'totals after --from continue from the earlier days');

  const dry = lake.backfill('--dry-run');
  assert.match(dry.stdout, /dry run: 4 days/);
  assert.deepEqual(await lake.objects(), objects, 'a dry run writes nothing');

  const parallel = lake.backfill('--workers', '2');
  assert.match(parallel.stdout, /backfill user_transaction_counts: 4 days, .*, days done by 2 worker processes/, 'the days were split across two processes');
  assert.deepEqual(await lake.features(), lake.streamed, 'two workers give the same rows');
  assert.deepEqual(await lake.objects(), objects, 'and the same objects');

  assert.deepEqual(await lake.redisSnapshot(), redisBefore, 'Redis byte-for-byte untouched');
});

test('backfill killed mid-day, then re-run, ends in the state of one clean run', { timeout: 300_000 }, async (t) => {
  const lake = await streamedLake(t, 'backfill-crash');
  const crashed = spawn('pnpm', ['--silent', 'run', 'backfill', '--', '--namespace', lake.namespace], {
    cwd: repoRoot,
    env: { ...process.env, LAKESTREAM_BACKFILL_PAUSE_MS: '60000' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  crashed.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await waitFor('the backfill to pause half-way through a day', async () => (stderr.includes('paused') ? true : undefined), 60_000, 200);
  process.kill(-crashed.pid!, 'SIGKILL');
  await new Promise((resolve) => crashed.once('exit', resolve));
  assert.deepEqual(await lake.features(), lake.streamed, 'a reader still sees the old days, whole: nothing of the killed run is visible');
  assert.ok((await lake.objects()).every((line) => !line.includes('/backfill-')), 'the killed run committed nothing');

  lake.backfill();
  assert.deepEqual(await lake.features(), lake.streamed);
  const afterCrash = await lake.objects();
  lake.backfill();
  assert.deepEqual(await lake.objects(), afterCrash, 'the same objects as a clean run over the repaired lake');
  assert.ok(afterCrash.every((line) => line.includes('/backfill-')));
});

test('late transactions around a backfill of their day are neither lost nor doubled in the feature table', { timeout: 420_000 }, async (t) => {
  const lake = await streamedLake(t, 'backfill-late');
  const producer = await createTransactionsProducer(config, { topic: lake.names.topic.transactions });
  onCleanup(t, () => producer.close());
  const balance = () => featureBalance((sql) => lake.query(sql));
  let last = {};
  const until = async (what: string, archived: number, features: number) =>
    waitFor(what, async () => {
      const now = await balance();
      last = now;
      return now.archived === archived && now.features === features ? true : undefined;
    }).catch((error: unknown) => {
      throw new Error(`${String(error)}; last seen ${JSON.stringify(last)}`);
    });
  const archiver = () => lake.job('transactions-job-backup', { flushIntervalMs: 500 });
  const featurePath = () => ['transactions-ml-features-job', 'user-transaction-counts-lake-sink'].map((name) => lake.job(name, { flushIntervalMs: 500 }));

  // Late transactions whose features are in the table before the transactions are archived: the
  // backfill must not drop rows of transactions it cannot see yet.
  await producer.send(late(20, 3_600_000));
  const features = featurePath();
  for (const job of features) await job.start();
  await until('the late features before their transactions', TOTAL, TOTAL + 20);
  for (const job of features) await job.stop();
  lake.backfill();
  const backup = archiver();
  await backup.start();
  await until('the late transactions archived', TOTAL + 20, TOTAL + 20);
  await backup.stop();
  assert.deepEqual(await balance(), { archived: TOTAL + 20, features: TOTAL + 20, unmatched: 0 }, 'every late transaction once in the features');

  // Late transactions archived before their features reach the table: the backfill counts them,
  // and the feature rows the stream writes afterwards must not add them a second time.
  await producer.send(late(30, 7_200_000));
  const backup2 = archiver();
  await backup2.start();
  await until('the second late batch archived', TOTAL + 50, TOTAL + 20);
  await backup2.stop();
  lake.backfill();
  await until('the backfill counted the archived late transactions', TOTAL + 50, TOTAL + 50);
  const features2 = featurePath();
  for (const job of features2) await job.start();
  // the stream's 30 rows of the second batch reach the sink, dropped or written; stopping flushes
  // what it holds. recordsIn alone is no sign: a sink that reads again from the table's offset
  // counts the records it read before seeking back.
  const sinkStats = () => features2[1]!.stats() as { superseded?: number; rowsWritten?: number; buffered?: number };
  await waitFor('the sink decided on the stream rows of the second batch', async () => {
    const now = sinkStats();
    return (now.superseded ?? 0) + (now.rowsWritten ?? 0) + (now.buffered ?? 0) >= 30 ? true : undefined;
  });
  for (const job of features2) await job.stop();
  assert.equal((features2[1]!.stats() as { superseded?: number }).superseded, 30, 'the sink dropped the rows the backfill had counted');
  assert.deepEqual(await balance(), { archived: TOTAL + 50, features: TOTAL + 50, unmatched: 0 }, 'no late transaction twice');
});

test('a backfill whose commit is refused because the sink and a compaction moved its day commits on top of them, without computing the day again', { timeout: 420_000 }, async (t) => {
  const lake = await streamedLake(t, 'backfill-rebase');
  const producer = await createTransactionsProducer(config, { topic: lake.names.topic.transactions });
  onCleanup(t, () => producer.close());
  const dt = '2026-11-19';
  const balance = () => featureBalance((sql) => lake.query(sql));
  const archive = async (total: number) => {
    const backup = lake.job('transactions-job-backup', { flushIntervalMs: 500 });
    await backup.start();
    await waitFor('the late transactions archived', async () => ((await balance()).archived === total ? true : undefined));
    await backup.stop();
  };

  // 40 late transactions archived, not yet counted: the backfill's archive holds them
  await producer.send(late(40, 3_600_000));
  await archive(TOTAL + 40);
  const backfill = spawn(process.execPath, ['--import', 'tsx', 'backfill/cli.ts', '--namespace', lake.namespace, '--from', dt, '--to', dt], {
    cwd: repoRoot,
    env: { ...process.env, LAKESTREAM_BACKFILL_PAUSE_MS: '45000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  backfill.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  backfill.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => backfill.once('exit', resolve));
  onCleanup(t, () => void backfill.kill('SIGKILL'));
  await waitFor('the backfill to pause between its upload and its commit', async () => (output.includes('paused') ? true : undefined), 60_000, 200);

  // meanwhile a compaction merges the day's stream files (the ones the backfill replaces), and
  // the stream counts the 40 (rows below the backfill's cover) and 10 more of the same hour, not archived yet
  const compacted = spawnSync(process.execPath, ['--import', 'tsx', 'backfill/compact-cli.ts', '--namespace', lake.namespace, '--table', 'user_transaction_counts', '--dt', dt], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(compacted.status, 0, compacted.stderr);
  assert.match(compacted.stdout, /[1-9]\d* files merged/);
  await producer.send(late(10, 6_000_000));
  const features = ['transactions-ml-features-job', 'user-transaction-counts-lake-sink'].map((name) => lake.job(name, { flushIntervalMs: 500 }));
  for (const job of features) await job.start();
  await waitFor('the stream rows of the 50 in the feature table', async () => ((await balance()).features === TOTAL + 50 ? true : undefined));
  for (const job of features) await job.stop();
  assert.equal(backfill.exitCode, null, `the backfill had not committed yet: ${output}`);

  assert.equal(await exited, 0, output);
  assert.match(output, /1 commits made again on a table the sinks moved meanwhile/);
  // the 40 counted once (by the backfill), the 10 kept as the stream wrote them until archived
  assert.deepEqual(await balance(), { archived: TOTAL + 40, features: TOTAL + 50, unmatched: 10 });
  await archive(TOTAL + 50);
  assert.deepEqual(await balance(), { archived: TOTAL + 50, features: TOTAL + 50, unmatched: 0 }, 'every transaction once in the feature table');
  assert.match(JSON.stringify(await lake.objects()), /backfill-kept-/, 'the hour of the 10 was rewritten without the rows the backfill counted');
});
