import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { openDuckdb } from '../../core/duckdb.ts';
import { loadTableState } from '../../core/iceberg/table.ts';
import { sinkStateKey } from '../../core/lake-layout.ts';
import { config } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

test('pnpm run lake -- migrate imports a Hive-style lake once, with the old sink offsets in the snapshot', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'migrate');
  const table = pipeline.names.tables.transactions;
  const store = pipeline.context.objectStore();
  // the old layout: two hours of sink files and the sink's partition state objects
  const duck = await openDuckdb(config);
  const local = join(tmpdir(), `lakestream-migrate-${process.pid}.parquet`);
  const oldFile = async (key: string, from: number, rows: number, hourStart: number) => {
    await duck.connection.run(`COPY (SELECT (i % 40)::INTEGER AS user_id, (${hourStart} + i * 1000)::BIGINT AS transaction_timestamp_millis, (i * 0.5)::DOUBLE AS amount, 'EUR' AS currency, 7::INTEGER AS counterpart_id
      FROM range(${from}, ${from + rows}) t(i)) TO '${local}' (FORMAT parquet)`);
    await store.put(key, readFileSync(local));
  };
  const ten = Date.UTC(2026, 10, 18, 10);
  await oldFile(`${table.path}/dt=2026-11-18/hour=10/p0-0-299.parquet`, 0, 300, ten);
  await oldFile(`${table.path}/dt=2026-11-18/hour=11/p0-300-499.parquet`, 300, 200, ten + 3_600_000);
  await oldFile(`${table.path}/dt=2026-11-18/hour=11/p1-0-99.parquet`, 1000, 100, ten + 3_600_000);
  rmSync(local, { force: true });
  duck.close();
  await store.putJson(sinkStateKey(table.sinkStateRoot, 0), { committedThrough: 499, topicId: 'old-topic-id' });
  await store.putJson(sinkStateKey(table.sinkStateRoot, 1), { committedThrough: 99, topicId: 'old-topic-id' });

  const migrate = () => spawnSync('pnpm', ['--silent', 'run', 'lake', '--', 'migrate', '--namespace', pipeline.namespace, '--table', 'transactions', '--json'], { cwd: repoRoot, encoding: 'utf8' });
  const first = migrate();
  assert.equal(first.status, 0, first.stderr);
  assert.deepEqual(JSON.parse(first.stdout), { table: `${table.iceberg.namespace[0]}.transactions`, status: 'migrated', files: 2, rows: 600, offsets: { 0: 500, 1: 100 } });
  const [rows] = await pipeline.query<{ n: string; amount: number; hours: string }>('SELECT count(*) AS n, sum(amount) AS amount, count(DISTINCT hour) AS hours FROM transactions');
  assert.equal(Number(rows!.n), 600, 'every old row, once');
  assert.equal(rows!.amount, (499 * 500) / 2 * 0.5 + ((1000 + 1099) * 100) / 2 * 0.5);
  assert.equal(Number(rows!.hours), 2);
  const state = (await loadTableState(pipeline.context.lakeTables(), table.iceberg))!;
  assert.deepEqual(state.offsets?.next, { 0: 500, 1: 100 }, 'the Iceberg sink goes on where the old one stopped');

  const again = migrate();
  assert.equal(again.status, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).status, 'already migrated');
  const [after] = await pipeline.query<{ n: string }>('SELECT count(*) AS n FROM transactions');
  assert.equal(Number(after!.n), 600, 'a second run adds nothing');
});
