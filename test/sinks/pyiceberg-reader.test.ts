import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const python = join(config.LAKESTREAM_CACHE_DIR, 'python', 'bin', 'python');

/**
 * A reader nobody here wrote: PyIceberg (the Apache project's Python implementation, strict about
 * the spec) reads the tables the sink committed through the same REST catalog, and must see the
 * same rows, schema and types as DuckDB.
 */
test('PyIceberg reads the lake tables through the REST catalog with the same counts, sums and types as DuckDB', { timeout: 300_000 }, async (t) => {
  assert.ok(existsSync(python), `${python} is missing: scripts/bootstrap.sh installs PyIceberg there`);
  const pipeline = await setupPipeline(t, 'pyiceberg');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  await producer.send(Array.from({ length: 2_500 }, createTransactionGenerator({ users: 90, seed: 5, spreadDays: 2 })));
  const sink = pipeline.job('transactions-job-backup', { flushIntervalMs: 300 });
  await sink.start();
  await pipeline.waitForCount('transactions', 2_500);
  await sink.stop();
  const [duck] = await pipeline.query<{ n: string; users: string; amount: number; days: string }>(
    'SELECT count(*) AS n, sum(user_id) AS users, round(sum(amount), 2) AS amount, count(DISTINCT dt) AS days FROM transactions',
  );

  const table = pipeline.names.tables.transactions.iceberg;
  const result = spawnSync(python, [join(repoRoot, 'scripts', 'pyiceberg-read.py'), table.namespace.join('.'), table.name], {
    encoding: 'utf8',
    env: { ...process.env, ICEBERG_CATALOG_URL: config.ICEBERG_CATALOG_URL, ICEBERG_WAREHOUSE: config.ICEBERG_WAREHOUSE, S3_ENDPOINT: config.S3_ENDPOINT, S3_ACCESS_KEY_ID: config.S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: config.S3_SECRET_ACCESS_KEY, S3_REGION: config.S3_REGION },
  });
  assert.equal(result.status, 0, result.stderr);
  const read = JSON.parse(result.stdout) as { rows: number; users: number; amount: number; days: number; types: Record<string, string>; offsets: string };
  assert.equal(read.rows, Number(duck!.n));
  assert.equal(read.users, Number(duck!.users));
  assert.equal(read.amount, duck!.amount);
  assert.equal(read.days, Number(duck!.days));
  assert.deepEqual(read.types, {
    user_id: 'int',
    transaction_timestamp_millis: 'long',
    amount: 'double',
    currency: 'string',
    counterpart_id: 'int',
    _kafka_partition: 'int',
    _kafka_offset: 'long',
    dt: 'date',
    hour: 'int',
  });
  const offsets = JSON.parse(read.offsets) as Record<string, number>;
  assert.equal(Object.values(offsets).reduce((sum, next) => sum + next, 0), 2_500, 'the snapshot summary PyIceberg reads holds the offsets');
});
