import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const ARCHIVED = 2_500;
const python = join(config.LAKESTREAM_CACHE_DIR, 'python', 'bin', 'python');
const jarDir = join(config.LAKESTREAM_CACHE_DIR, 'spark-jars');

/**
 * A transactions table the archive sink committed, for a reader nobody here wrote (PyIceberg,
 * Spark) to read through the same REST catalog: DuckDB's figures of it, its Iceberg name, and the
 * environment the reader scripts take their settings from.
 */
async function archivedForOutsideReader(t: TestContext, label: string) {
  const pipeline = await setupPipeline(t, label);
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  await producer.send(Array.from({ length: ARCHIVED }, createTransactionGenerator({ users: 90, seed: 5, spreadDays: 2 })));
  const sink = pipeline.job('transactions-job-backup', { flushIntervalMs: 300 });
  await sink.start();
  await pipeline.waitForCount('transactions', ARCHIVED);
  await sink.stop();
  const [duck] = await pipeline.query<{ n: string; users: string; amount: number; days: string }>(
    'SELECT count(*) AS n, sum(user_id) AS users, round(sum(amount), 2) AS amount, count(DISTINCT dt) AS days FROM transactions',
  );
  const table = pipeline.names.tables.transactions.iceberg;
  const env = {
    ...process.env,
    LAKESTREAM_CACHE_DIR: config.LAKESTREAM_CACHE_DIR,
    ICEBERG_CATALOG_URL: config.ICEBERG_CATALOG_URL,
    ICEBERG_WAREHOUSE: config.ICEBERG_WAREHOUSE,
    S3_ENDPOINT: config.S3_ENDPOINT,
    S3_ACCESS_KEY_ID: config.S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY: config.S3_SECRET_ACCESS_KEY,
    S3_REGION: config.S3_REGION,
  };
  return { duck: { rows: Number(duck!.n), users: Number(duck!.users), amount: duck!.amount, days: Number(duck!.days) }, namespace: table.namespace.join('.'), name: table.name, env };
}

/** What both reader scripts print. */
interface ReaderFigures {
  rows: number;
  users: number;
  amount: number;
  days: number;
  types: Record<string, string>;
  offsets: string;
}

/** Each column's Iceberg type as the reader names it: PyIceberg speaks Iceberg's names, Spark its own. */
const columns = ['user_id', 'transaction_timestamp_millis', 'amount', 'currency', 'counterpart_id', '_kafka_partition', '_kafka_offset', 'dt', 'hour'];
const readers = [
  {
    name: 'PyIceberg',
    about: "the Apache project's Python implementation, strict about the spec",
    script: 'pyiceberg-read.py',
    types: ['int', 'long', 'double', 'string', 'int', 'int', 'long', 'date', 'int'],
    installed() {
      assert.ok(existsSync(python), `${python} is missing: scripts/bootstrap.sh installs PyIceberg there`);
    },
  },
  {
    name: 'Spark',
    about: "Iceberg's Spark runtime, the JVM reference implementation, in a local one-core session",
    script: 'spark-read.py',
    types: ['int', 'bigint', 'double', 'string', 'int', 'int', 'bigint', 'date', 'int'],
    installed() {
      assert.ok(existsSync(python), `${python} is missing: scripts/bootstrap.sh installs PySpark there`);
      const pyspark = spawnSync(python, ['-c', 'import pyspark'], { encoding: 'utf8' });
      assert.equal(pyspark.status, 0, `PySpark is not installed in ${python} (run scripts/bootstrap.sh): ${pyspark.stderr}`);
      const jars = existsSync(jarDir) ? readdirSync(jarDir).filter((file) => file.endsWith('.jar')) : [];
      for (const prefix of ['iceberg-spark-runtime-', 'iceberg-aws-bundle-']) {
        assert.ok(jars.some((jar) => jar.startsWith(prefix)), `no ${prefix}*.jar in ${jarDir}: scripts/bootstrap.sh downloads it`);
      }
    },
  },
];

/**
 * Readers nobody here wrote read the tables the sink committed, through the same REST catalog,
 * and must see the same rows, schema and types as DuckDB, and the Kafka offsets in the snapshot
 * summary.
 */
for (const reader of readers) {
  test(`${reader.name} reads the lake tables through the REST catalog with the same counts, sums and types as DuckDB (${reader.about})`, { timeout: 420_000 }, async (t) => {
    reader.installed();
    const lake = await archivedForOutsideReader(t, reader.name.toLowerCase());
    const result = spawnSync(python, [join(repoRoot, 'scripts', reader.script), lake.namespace, lake.name], { encoding: 'utf8', timeout: 300_000, env: lake.env });
    assert.equal(result.status, 0, result.error?.message ?? result.stderr);
    const timing = result.stderr.split('\n').find((line) => line.startsWith('spark-read:'));
    if (timing) t.diagnostic(timing);
    const read = JSON.parse(result.stdout) as ReaderFigures;
    assert.deepEqual({ rows: read.rows, users: read.users, amount: read.amount, days: read.days }, lake.duck);
    assert.deepEqual(read.types, Object.fromEntries(columns.map((column, i) => [column, reader.types[i]])));
    const offsets = JSON.parse(read.offsets) as Record<string, number>;
    assert.equal(Object.values(offsets).reduce((sum, next) => sum + next, 0), ARCHIVED, `the snapshot summary ${reader.name} reads holds the offsets`);
  });
}
