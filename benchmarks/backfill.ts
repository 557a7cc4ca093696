import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { arg, defineCommand, flag, option } from '../core/cli.ts';
import { loadConfig, repoRoot, type Config } from '../core/config.ts';
import { openDuckdb } from '../core/duckdb.ts';
import { createS3 } from '../core/s3.ts';
import { formatCount } from '../core/stats.ts';
import { catalog } from '../platform/catalog.ts';
import { createClientContext } from '../platform/context.ts';
import type { DataFile } from '../core/iceberg/manifest.ts';
import { commitSnapshot, keyOf } from '../core/iceberg/table.ts';
import { ensureLakeTable } from '../platform/lake.ts';

/**
 * Backfill speed over a synthetic archive (default 10M rows: 10 days x 24 hourly files, in the
 * backup sink's file names and schema, committed to the namespace's Iceberg table), beside DuckDB SQL computing the same running totals over the
 * same files in the same run.
 */
export interface BackfillBench {
  rows: number;
  duckdb: number;
  one: number;
  two: number;
}

export async function benchBackfill(config: Config, rows: number, days: number, keep = false): Promise<BackfillBench> {
const namespace = `bench-backfill-${Date.now().toString(36)}`;
const names = catalog(namespace);
const duck = await openDuckdb(config, { memory_limit: '2GB' });
const perFile = Math.ceil(rows / (days * 24));
const context = createClientContext(config, { namespace });
const lake = context.lakeTables();
const table = await ensureLakeTable(lake, names, names.tables.transactions, config.LAKE_BUCKET);
const location = table.loaded.metadata.location.replace(/\/+$/, '');
const ids = table.schema.fields.map((field) => `'${field.name}': ${field.id}`).join(', ');
const work = mkdtempSync(join(tmpdir(), 'lakestream-bench-archive-'));

console.error(`bench: writing a ${formatCount(rows)}-row archive (${days * 24} files) into ${location}`);
const start = Date.UTC(2026, 9, 1);
let offset = 0;
const writeStarted = performance.now();
const files: DataFile[] = [];
for (let d = 0; d < days; d++) {
  for (let h = 0; h < 24; h++) {
    const dt = new Date(start + d * 86_400_000).toISOString().slice(0, 10);
    const base = start + d * 86_400_000 + h * 3_600_000;
    const hour = String(h).padStart(2, '0');
    const path = `${location}/data/dt=${dt}/hour=${hour}/p${h % 6}-${offset}-${offset + perFile - 1}-${randomUUID()}.parquet`;
    const local = join(work, 'file.parquet');
    await duck.connection.run(`COPY (
      SELECT (hash(i * 7919) % 100000)::INTEGER AS user_id,
             (${base} + (hash(i) % 3600000))::BIGINT AS transaction_timestamp_millis,
             round(((hash(i * 31) % 20000)::DOUBLE - 15000) / 100, 2) AS amount,
             ['EUR', 'USD', 'GBP', 'CHF', 'PLN'][1 + (hash(i * 17) % 5)::INTEGER] AS currency,
             (1000000 + hash(i * 13) % 20000)::INTEGER AS counterpart_id,
             DATE '${dt}' AS dt, ${h}::INTEGER AS hour
      FROM range(${offset}, ${offset + perFile}) t(i)
    ) TO '${local}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, FIELD_IDS {${ids}})`);
    const body = readFileSync(local);
    await lake.store.put(keyOf(lake.store, path), body);
    files.push({ path, records: BigInt(perFile), sizeBytes: BigInt(body.length), partition: { dt: Date.parse(`${dt}T00:00:00Z`) / 86_400_000, hour: h } });
    offset += perFile;
  }
  process.stderr.write(`\r  day ${d + 1}/${days}`);
}
process.stderr.write('\n');
await commitSnapshot(lake, table, { operation: 'append', added: files, writer: 'bench' });
rmSync(work, { recursive: true, force: true });
const total = offset;
const archiveList = `[${files.map((file) => `'${file.path}'`).join(', ')}]`;
console.error(`bench: archive written and committed in ${((performance.now() - writeStarted) / 1000).toFixed(1)} s`);

/**
 * The backfill CLI's own figure: rows read per second from the start of its work (DuckDB open,
 * seeds, every day) to the end, as DuckDB SQL below is timed from its query's start. Process
 * start-up (pnpm, tsx) is not the backfill's speed.
 */
function backfill(workers: number): number {
  const result = spawnSync('pnpm', ['--silent', 'run', 'backfill', '--', '--feature', 'counts', '--namespace', namespace, '--workers', String(workers)], { cwd: repoRoot, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(result.stderr);
  const rate = /([\d,]+) rows\/s/.exec(result.stdout)?.[1];
  if (!rate) throw new Error(`backfill printed no rate: ${result.stdout}`);
  return Number(rate.replaceAll(',', ''));
}

/** DuckDB alone: the same running totals over the same files, written to local Parquet. */
async function duckdbSql(): Promise<number> {
  const out = mkdtempSync(join(tmpdir(), 'lakestream-bench-'));
  const began = performance.now();
  await duck.connection.run(`COPY (
    SELECT user_id,
           row_number() OVER (PARTITION BY user_id ORDER BY transaction_timestamp_millis, filename, file_row_number) AS total_transactions_count,
           transaction_timestamp_millis AS event_timestamp_millis, dt, hour
    FROM read_parquet(${archiveList}, filename = true, file_row_number = true)
  ) TO '${out}/counts' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt, hour))`);
  const rate = total / ((performance.now() - began) / 1000);
  rmSync(out, { recursive: true, force: true });
  return rate;
}

const duckdb = await duckdbSql();
const one = backfill(1);
const two = backfill(2);
duck.close();

if (!keep) {
  for (const name of await lake.catalog.listTables(names.tables.transactions.iceberg.namespace)) await lake.catalog.dropTable(names.tables.transactions.iceberg.namespace, name);
  await lake.catalog.dropNamespace(names.tables.transactions.iceberg.namespace);
  const s3 = createS3(config);
  for (;;) {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.LAKE_BUCKET, Prefix: `${namespace}/` }));
    const keys = (listed.Contents ?? []).map((object) => ({ Key: object.Key! }));
    if (!keys.length) break;
    await s3.send(new DeleteObjectsCommand({ Bucket: config.LAKE_BUCKET, Delete: { Objects: keys } }));
  }
  s3.destroy();
}
await context.close();
return { rows: total, duckdb, one, two };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = defineCommand({
    name: 'bench:backfill',
    usage: ['node --import tsx benchmarks/backfill.ts [-- options]'],
    description: 'The backfill section of pnpm run bench alone: DuckDB SQL against the backfill with 1 and 2 workers over the same archive.',
    options: {
      rows: option('N', 'archived rows to generate', arg.positiveInteger().default(10_000_000)),
      days: option('D', 'event days they spread over', arg.positiveInteger().default(10)),
      keep: flag("keep the run's namespace for a look afterwards"),
    },
  }).parse();
  if (!args) process.exit(0);
  const result = await benchBackfill(loadConfig(), args.values.rows, args.values.days, args.values.keep);
  console.log(`| ${formatCount(result.rows)} archived rows | rows/s | x DuckDB SQL |\n|---|---:|---:|`);
  console.log(`| DuckDB SQL | ${formatCount(result.duckdb)} | 1.00 |\n| backfill, 1 worker | ${formatCount(result.one)} | ${(result.one / result.duckdb).toFixed(2)} |\n| backfill, 2 workers | ${formatCount(result.two)} | ${(result.two / result.duckdb).toFixed(2)} |`);
}
