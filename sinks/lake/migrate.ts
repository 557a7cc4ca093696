import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Catalog, ResolvedTable } from '../../platform/catalog.ts';
import type { Config } from '../../core/config.ts';
import { openDuckdb } from '../../core/duckdb.ts';
import { duckdbTypeOf } from '../../core/iceberg/schema.ts';
import type { DataFile } from '../../core/iceberg/manifest.ts';
import { commitSnapshot, keyOf, type TableDeps } from '../../core/iceberg/table.ts';
import { LakestreamError } from '../../core/errors.ts';
import { ensureLakeTable } from '../../platform/lake.ts';
import { parseSinkPartitionState, sinkStateKey } from '../../core/lake-layout.ts';

/**
 * Imports a lake written before the Iceberg tables (Hive-style `<table>/dt=…/hour=…/*.parquet`
 * folders, with the sink's `partition=<p>.json` state objects) into the table's Iceberg table,
 * once. Each hour's files are rewritten into one file with the table's field ids (old files have
 * none, so adding them as they are would leave readers guessing columns by name) and committed in
 * one append whose snapshot carries the old sink state's offsets, so the Iceberg sink goes on
 * exactly where the old one stopped: no row twice, none lost. The table property
 * `lakestream.migrated-from` marks a table done, in the same commit; a second run does nothing.
 * The old objects are left where they are (delete them once satisfied).
 */
export const MIGRATED = 'lakestream.migrated-from';

export interface MigrationResult {
  table: string;
  status: 'migrated' | 'already migrated' | 'nothing to migrate';
  files: number;
  rows: number;
  offsets: Record<number, number>;
}

export async function migrateTable(config: Config, deps: TableDeps, names: Catalog, table: ResolvedTable, options: { dryRun?: boolean } = {}): Promise<MigrationResult> {
  const { store } = deps;
  const id = `${table.iceberg.namespace.join('.')}.${table.iceberg.name}`;
  const state = await ensureLakeTable(deps, names, table, store.bucket);
  const done = { table: id, files: 0, rows: 0, offsets: {} };
  if (state.loaded.metadata.properties?.[MIGRATED]) return { ...done, status: 'already migrated' };
  const files = (await store.list(`${table.path}/dt=`)).filter((key) => /\/dt=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/[^/]+\.parquet$/.test(key));
  const offsets: Record<number, number> = {};
  for (const key of await store.list(`${table.sinkStateRoot}/`)) {
    const match = /\/partition=(\d+)\.json$/.exec(key);
    if (!match || key.includes('/before-reset-')) continue;
    const found = await store.getJson<unknown>(key);
    if (!found) continue;
    const parsed = parseSinkPartitionState(found.value, sinkStateKey(table.sinkStateRoot, Number(match[1])));
    if (parsed.committedThrough >= 0) offsets[Number(match[1])] = parsed.committedThrough + 1;
  }
  if (!files.length) return { ...done, status: 'nothing to migrate' };
  if (Number(state.snapshot?.summary['total-records'] ?? 0) > 0 || state.offsets) {
    // an Iceberg sink already archived from Kafka's committed offsets, which may overlap the old
    // lake's last flushes: importing now could hold a record twice
    throw new LakestreamError('USAGE', `${id} already holds rows archived by the Iceberg sink; migrate before starting the new sinks (stop them, or import the old lake into a fresh namespace)`);
  }
  const byHour = new Map<string, string[]>();
  for (const key of files) {
    const [, dt, hour] = /\/dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\//.exec(key)!;
    byHour.set(`${dt}|${hour}`, [...(byHour.get(`${dt}|${hour}`) ?? []), key]);
  }
  if (options.dryRun) return { table: id, status: 'migrated', files: byHour.size, rows: 0, offsets };

  const work = mkdtempSync(join(tmpdir(), 'lakestream-migrate-'));
  const duck = await openDuckdb(config, { memory_limit: '512MB', temp_directory: join(work, 'spill') });
  const location = state.loaded.metadata.location.replace(/\/+$/, '');
  const added: DataFile[] = [];
  try {
    const ids = state.schema.fields.map((field) => `'${field.name}': ${field.id}`).join(', ');
    for (const [group, keys] of [...byHour].sort(([a], [b]) => a.localeCompare(b))) {
      const [dt, hour] = group.split('|') as [string, string];
      const urls = keys.map((key) => `'s3://${store.bucket}/${key}'`).join(', ');
      // the table's columns in its order; a column an old file lacks reads as NULL, also one no
      // file of the hour has (the Kafka positions the Hive-style lake never kept)
      const present = new Set(
        ((await duck.connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet([${urls}], union_by_name = true, hive_partitioning = false)`)).getRowObjectsJS() as Array<{ column_name: string }>).map((c) => c.column_name),
      );
      const columns = state.schema.fields.map((field) =>
        field.name === 'dt'
          ? `DATE '${dt}' AS dt`
          : field.name === 'hour'
            ? `${Number(hour)}::INTEGER AS hour`
            : present.has(field.name)
              ? `"${field.name}"`
              : `NULL::${duckdbTypeOf[field.type]} AS "${field.name}"`,
      );
      const local = join(work, `${dt}-${hour}.parquet`);
      // rows in the order the sink wrote them (file, then row), which the backfill's tie-break reads
      await duck.connection.run(`COPY (SELECT ${columns.join(', ')} FROM read_parquet([${urls}], union_by_name = true, hive_partitioning = false, filename = true, file_row_number = true) ORDER BY filename, file_row_number)
        TO '${local}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, FIELD_IDS {${ids}})`);
      const body = readFileSync(local);
      const count = (await duck.connection.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet('${local}')`)).getRowObjectsJS()[0] as { n: bigint };
      const path = `${location}/data/dt=${dt}/hour=${hour}/migrated-${randomUUID()}.parquet`;
      await store.put(keyOf(store, path), body);
      rmSync(local, { force: true });
      added.push({ path, records: count.n, sizeBytes: BigInt(body.length), partition: { dt: Date.parse(`${dt}T00:00:00Z`) / 86_400_000, hour: Number(hour) } });
    }
  } finally {
    duck.close();
    rmSync(work, { recursive: true, force: true });
  }
  const topicId = (await store.getJson<{ topicId?: string }>(sinkStateKey(table.sinkStateRoot, Number(Object.keys(offsets)[0] ?? 0))))?.value.topicId ?? '';
  await commitSnapshot(deps, state, {
    operation: 'append',
    added,
    ...(Object.keys(offsets).length ? { offsets: { topic: table.topic, topicId, next: offsets } } : {}),
    properties: { [MIGRATED]: `s3://${store.bucket}/${table.path}/ at ${new Date().toISOString()}` },
    writer: 'migration',
  });
  return { table: id, status: 'migrated', files: added.length, rows: added.reduce((sum, file) => sum + Number(file.records), 0), offsets };
}
