import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Admin } from '@platformatic/kafka';
import pg from 'pg';
import { openDuckdb } from '../../core/duckdb.ts';
import { createRedis } from '../../core/redis.ts';
import { cleanupPrefix, config, onCleanup, testS3, uniqueName } from '../helpers.ts';

test('each Kafka broker serves metadata that lists the whole cluster', async () => {
  const seen: number[] = [];
  for (const broker of config.KAFKA_BROKERS) {
    const admin = new Admin({ clientId: 'lakestream-test', bootstrapBrokers: [broker], retries: 1 });
    try {
      const metadata = await admin.metadata({ topics: [] });
      assert.equal(metadata.brokers.size, config.KAFKA_BROKERS.length, `${broker} sees every broker`);
      const self = [...metadata.brokers.values()].find((b) => `${b.host}:${b.port}` === broker);
      assert.ok(self, `${broker} is one of the brokers it reports`);
      seen.push([...metadata.brokers.entries()].find(([, b]) => b === self)![0]);
    } finally {
      await admin.close();
    }
  }
  assert.equal(new Set(seen).size, config.KAFKA_BROKERS.length, 'the brokers are distinct nodes');
});

test('an object put into MinIO reads back byte for byte', async (t) => {
  const s3 = testS3(t);
  const prefix = `${uniqueName('s3')}/`;
  cleanupPrefix(t, s3, prefix);
  const body = Buffer.from(`lakestream ${prefix} ${'x'.repeat(1000)}`);
  await s3.send(new PutObjectCommand({ Bucket: config.LAKE_BUCKET, Key: `${prefix}object.bin`, Body: body }));
  const got = await s3.send(new GetObjectCommand({ Bucket: config.LAKE_BUCKET, Key: `${prefix}object.bin` }));
  assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);
});

test('Redis answers and stores a value', async (t) => {
  const redis = createRedis(config);
  onCleanup(t, () => redis.quit());
  assert.equal(await redis.ping(), 'PONG');
  const key = uniqueName('redis');
  await redis.set(key, '42', 'EX', 60);
  assert.equal(await redis.get(key), '42');
  await redis.del(key);
});

test('DuckDB reads a Parquet object from MinIO over s3://', async (t) => {
  const s3 = testS3(t);
  const prefix = `${uniqueName('duckdb')}/`;
  cleanupPrefix(t, s3, prefix);
  const duck = await openDuckdb(config);
  onCleanup(t, () => duck.close());
  const local = join(mkdtempSync(join(tmpdir(), 'lakestream-')), 'numbers.parquet');
  await duck.connection.run(`COPY (SELECT range AS n, range * 2 AS doubled FROM range(1000)) TO '${local}' (FORMAT parquet)`);
  await s3.send(new PutObjectCommand({ Bucket: config.LAKE_BUCKET, Key: `${prefix}numbers.parquet`, Body: readFileSync(local) }));
  const reader = await duck.connection.runAndReadAll(
    `SELECT count(*)::INTEGER AS rows, sum(doubled)::BIGINT AS total FROM read_parquet('s3://${config.LAKE_BUCKET}/${prefix}numbers.parquet')`,
  );
  assert.deepEqual(reader.getRowObjectsJS(), [{ rows: 1000, total: 999_000n }]);
});

test('PostgreSQL answers on POSTGRES_URL, in its own database, and keeps a table', async (t) => {
  const client = new pg.Client({ connectionString: config.POSTGRES_URL });
  await client.connect();
  onCleanup(t, () => client.end());
  const table = uniqueName('stack_test').replace(/\W/g, '_');
  await client.query(`CREATE TABLE ${table} (n int)`);
  onCleanup(t, () => client.query(`DROP TABLE IF EXISTS ${table}`));
  await client.query(`INSERT INTO ${table} SELECT generate_series(1, 10)`);
  const { rows } = await client.query(`SELECT current_database() AS db, sum(n)::int AS total FROM ${table}`);
  assert.deepEqual(rows, [{ db: new URL(config.POSTGRES_URL).pathname.slice(1), total: 55 }]);
});
