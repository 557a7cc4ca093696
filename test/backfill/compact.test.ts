import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compactDay, compactionTarget, removeOrphanFiles } from '../../backfill/compact.ts';
import { catalog } from '../../platform/catalog.ts';
import { createClientContext } from '../../platform/context.ts';
import { commitSnapshot, keyOf, liveFiles, loadTableState } from '../../core/iceberg/table.ts';
import { ensureLakeTable } from '../../platform/lake.ts';
import { dropLakeNamespace } from '../../infra/namespace.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { cleanupPrefix, config, onCleanup, testS3, uniqueName, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const HOUR_START = Date.UTC(2026, 10, 19, 10);

test('compaction keeps query results identical, is idempotent, leaves the open hour alone, and loses nothing beside a running sink', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'compact');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  // Events of two hours, 10:xx and 11:xx on one day.
  const next = createTransactionGenerator({ users: 60, seed: 4, spreadDays: 0, now: HOUR_START });
  const inHour = (hour: number) => () => ({ ...next(), transaction_timestamp_millis: HOUR_START + hour * 3_600_000 + Math.floor(Math.random() * 3_600_000) });
  // A commit every round of flushes: at a few a second a replace commit, which rewrites every
  // manifest holding one of its inputs on each attempt, would lose every race to the sink.
  const sink = pipeline.job('transactions-job-backup', { flushIntervalMs: 2_000 });
  await sink.start();

  let produced = 0;
  let producing = true;
  const background = (async () => {
    while (producing) {
      await producer.send(Array.from({ length: 100 }, inHour((produced / 100) % 2)));
      produced += 100;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  })();

  const target = compactionTarget('transactions', pipeline.namespace);
  const dt = new Date(HOUR_START).toISOString().slice(0, 10);
  const insideHour11 = new Date(HOUR_START + 3_600_000 + 60_000);
  let sawOpenHour = false;
  let merged = 0;
  // Compact over and over while the sink keeps adding files to both hours.
  for (let round = 0; round < 4; round++) {
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const results = await compactDay(pipeline.context, target, dt, { now: insideHour11 });
    merged += results.filter((r) => r.output).length;
    assert.ok(!results.some((r) => r.hour === '11' && r.output), 'the open hour is left alone');
    sawOpenHour ||= results.some((r) => r.hour === '11' && r.skipped === 'open hour');
  }
  assert.ok(sawOpenHour, 'the open hour was seen and skipped');
  assert.ok(merged > 0, 'hour 10 was compacted beside the running sink');
  producing = false;
  await background;
  await waitFor(`${produced} rows archived`, async () => {
    const [row] = await pipeline.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
    return Number(row!.n) === produced ? true : undefined;
  });
  await sink.stop();

  const rows = () =>
    pipeline.query<{ r: string }>(
      `SELECT concat_ws('|', user_id, transaction_timestamp_millis, amount, currency, counterpart_id) AS r FROM transactions ORDER BY r`,
    );
  const before = await rows();
  assert.equal(before.length, produced, 'nothing lost or duplicated while compacting beside the sink');
  assert.equal(new Set(before.map((row) => row.r)).size, produced);

  const lake = pipeline.context.lakeTables();
  const day = Date.parse(`${dt}T00:00:00Z`) / 86_400_000;
  const table = async () => (await loadTableState(lake, target.iceberg))!;
  /** The live files of the day, by hour (HH). */
  const liveByHour = async () => {
    const byHour: Record<string, string[]> = {};
    for (const { file } of await liveFiles(lake, await table())) {
      if (file.partition.dt === day) (byHour[String(file.partition.hour).padStart(2, '0')] ??= []).push(file.path);
    }
    return byHour;
  };
  assert.ok((await liveByHour())['11']!.length > 1, 'hour 11 still has its many small files');
  const offsets = (await table()).offsets;

  const all = await compactDay(pipeline.context, target, dt, { includeOpenHour: true, now: insideHour11 });
  assert.ok(all.every((r) => r.output || r.skipped === 'already one file'));
  const compacted = await liveByHour();
  assert.deepEqual(Object.keys(compacted).sort(), ['10', '11']);
  assert.deepEqual(Object.values(compacted).map((paths) => paths.length), [1, 1], 'one live file per hour');
  const state = await table();
  assert.equal(state.snapshot!.summary.operation, 'replace');
  assert.deepEqual(state.offsets, offsets, 'the Kafka offsets are carried forward');
  assert.deepEqual(await rows(), before, 'query results identical after compaction');

  const again = await compactDay(pipeline.context, target, dt, { includeOpenHour: true, now: insideHour11 });
  assert.ok(again.every((r) => !r.output), 'a second run merges nothing');
  assert.equal((await table()).snapshot!['snapshot-id'], state.snapshot!['snapshot-id'], 'and commits no snapshot');
  assert.deepEqual(await liveByHour(), compacted);
});

test('orphan removal deletes unreferenced data files past the age threshold, never live or fresh ones', { timeout: 120_000 }, async (t) => {
  // a table of its own, no pipeline: orphan removal needs only the catalog and the store
  const namespace = uniqueName('orphans');
  const names = catalog(namespace);
  cleanupPrefix(t, testS3(t), `${namespace}/`);
  // cleanups run last-registered first: the table goes before its files
  onCleanup(t, () => dropLakeNamespace(config, namespace).catch(() => {}));
  const context = createClientContext(config, { namespace });
  onCleanup(t, () => context.close());
  const lake = context.lakeTables();
  const { store } = lake;
  let state = await ensureLakeTable(lake, names, names.tables.transactions, config.LAKE_BUCKET);
  const location = state.loaded.metadata.location.replace(/\/+$/, '');
  const path = (name: string) => `${location}/data/dt=2026-11-19/hour=10/${name}.parquet`;
  const live = path('live');
  const oldOrphan = path('old-orphan');
  const freshOrphan = path('fresh-orphan');
  // nothing reads these files' bytes: orphan removal goes by the snapshot and the store's listing
  await store.put(keyOf(store, live), Buffer.from('live'));
  await store.put(keyOf(store, oldOrphan), Buffer.from('old'));
  state = await commitSnapshot(lake, state, {
    operation: 'append',
    added: [{ path: live, records: 1n, sizeBytes: 4n, partition: { dt: Date.parse('2026-11-19T00:00:00Z') / 86_400_000, hour: 10 } }],
    writer: 'test',
  });
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  await store.put(keyOf(store, freshOrphan), Buffer.from('fresh'));

  const deleted = await removeOrphanFiles(lake, state, { olderThanMs: 2_000 });
  assert.deepEqual(deleted, [keyOf(store, oldOrphan)]);
  const left = (await store.list(`${keyOf(store, location)}/data/`)).sort();
  assert.deepEqual(left, [keyOf(store, freshOrphan), keyOf(store, live)].sort(), 'the live file and the fresh orphan are kept');
  assert.deepEqual((await liveFiles(lake, state)).map((entry) => entry.file.path), [live]);
});
