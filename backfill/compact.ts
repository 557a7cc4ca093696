import type { ClientContext } from '../platform/context.ts';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { catalog, type ResolvedTable } from '../platform/catalog.ts';
import { openDuckdb, sqlList, sqlString } from '../core/duckdb.ts';
import { LakestreamError } from '../core/errors.ts';
import type { DataFile } from '../core/iceberg/manifest.ts';
import { CommitConflict, CommitStateUnknown } from '../core/iceberg/rest-catalog.ts';
import { duckdbTypeOf } from '../core/iceberg/schema.ts';
import { commitSnapshot, dropUnusedRewrites, keyOf, liveFiles, loadTableState, manifestRewrites, tableName, type TableDeps, type TableState } from '../core/iceberg/table.ts';
import { sinkFileSql } from '../core/lake-layout.ts';
import type { ObjectStore } from '../core/object-store.ts';

/**
 * Merges the small files of a lake table's hour partitions into one file per hour, each hour as
 * one Iceberg `replace` snapshot: its live files out, the merged file in. A reader sees the hour
 * as it was or as merged, never both, and a killed run leaves at most an unreferenced file.
 *
 * Safe beside a running sink: the sink only appends, so its commits make a compaction commit
 * retry on the new snapshot, never lose the files appended meanwhile. Two compactions of one
 * hour both aim at the same inputs; the second finds them gone and drops its output. A table
 * that moves under every one of ten attempts leaves the hour as it is (`busy`) for the next run.
 * Idempotent: an hour already in one file is left alone, so a re-run commits nothing.
 *
 * The replaced files stay in the store until `removeOrphanFiles` deletes them: a query planned
 * on the previous snapshot may still be reading them.
 */
export type CompactionTarget = ResolvedTable & {
  /** Where each compacted hour's run record goes (the dashboard lists them). */
  runRecords: string;
};

export interface HourResult {
  dt: string;
  hour: string;
  inputs: number;
  rows: number;
  output?: string;
  skipped?: string;
  /** Commits refused because a writer moved the table, each planned again on the newer snapshot. */
  retries?: number;
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/**
 * Commits refused because the table moved (a sink appending); each retry plans on the newest
 * snapshot. As many as a backfill's rebases: with the sinks committing several times a second, 10
 * left hours uncompacted in the lake-writers chaos scenario.
 */
const MAX_COMMIT_ATTEMPTS = 50;
/** A replaced file is kept this long by compactDay: longer than any query or stuck commit runs. */
const ORPHAN_AGE_MS = DAY_MS;


const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const locationOf = (state: TableState) => state.loaded.metadata.location.replace(/\/+$/, '');

/** A lake table of a (namespaced) pipeline, by its view name. */
export function compactionTarget(view: string, namespace: string): CompactionTarget {
  const names = catalog(namespace);
  const tables = Object.values(names.tables);
  const table = tables.find((t) => t.view === view);
  if (!table) throw new LakestreamError('USAGE', `--table must be one of ${tables.map((t) => t.view).join(', ')}, got ${JSON.stringify(view)}`);
  return { ...table, runRecords: names.roots.compactionManifests };
}

export async function compactDay(
  context: ClientContext,
  target: CompactionTarget,
  dt: string,
  options: { includeOpenHour?: boolean; hour?: string; now?: Date; orphanAgeMs?: number } = {},
): Promise<HourResult[]> {
  const { config } = context;
  const deps: TableDeps = { catalog: context.lakeTables().catalog, store: cachingManifests(context.objectStore()) };
  const work = mkdtempSync(join(tmpdir(), 'lakestream-compact-'));
  let duck: Awaited<ReturnType<typeof openDuckdb>> | undefined;
  const now = (options.now ?? new Date()).getTime();
  const day = Date.parse(`${dt}T00:00:00Z`) / DAY_MS;
  const results: HourResult[] = [];
  try {
    let state = await loadTableState(deps, target.iceberg);
    if (!state) return results;
    const byHour = new Map<number, DataFile[]>();
    for (const { file } of await liveFiles(deps, state)) {
      if (file.partition.dt === day) byHour.set(file.partition.hour, [...(byHour.get(file.partition.hour) ?? []), file]);
    }
    for (const [hourNumber, inputs] of [...byHour].sort(([a], [b]) => a - b)) {
      const hour = String(hourNumber).padStart(2, '0');
      if (options.hour && hour !== options.hour) continue;
      // the sink is still adding files to an hour that has not ended
      if (!options.includeOpenHour && day * DAY_MS + (hourNumber + 1) * HOUR_MS > now) {
        results.push({ dt, hour, inputs: inputs.length, rows: 0, skipped: 'open hour' });
        continue;
      }
      if (inputs.length < 2) {
        results.push({ dt, hour, inputs: inputs.length, rows: 0, skipped: 'already one file' });
        continue;
      }
      duck ??= await openDuckdb(config, { memory_limit: '1GB', temp_directory: join(work, 'spill') });
      const merged = await compactHour(deps, duck.connection, work, state, { dt, hour, inputs });
      state = merged.state;
      results.push(merged.result);
      if (merged.result.output) {
        // the run's record for operators (the dashboard lists them); the table itself needs none
        await deps.store.putJson(`${target.runRecords}/${target.view}/dt=${dt}/hour=${hour}.json`, {
          status: 'done',
          inputs: merged.result.inputs,
          rows: merged.result.rows,
          output: merged.result.output,
          snapshot: String(state.snapshot?.['snapshot-id'] ?? ''),
          at: new Date().toISOString(),
        });
      }
    }
    await removeOrphanFiles(deps, state, { olderThanMs: options.orphanAgeMs ?? ORPHAN_AGE_MS });
  } finally {
    duck?.close();
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}

/**
 * The store with Iceberg manifests and manifest lists read once per run: they are immutable
 * (uniquely named, never rewritten). A replace commit reads every manifest of the table, and a
 * retry after a sink's commit would otherwise read them all again, taking as long as the attempt
 * that just lost the race to the sink.
 */
function cachingManifests(store: ObjectStore): ObjectStore {
  const cache = new Map<string, Buffer>();
  return {
    ...store,
    async get(key) {
      const cached = cache.get(key);
      if (cached) return cached;
      const body = await store.get(key);
      if (body && /\/metadata\/[^/]+\.avro$/.test(key)) cache.set(key, body);
      return body;
    },
  };
}

type Connection = Awaited<ReturnType<typeof openDuckdb>>['connection'];

async function compactHour(
  deps: TableDeps,
  db: Connection,
  work: string,
  base: TableState,
  hour: { dt: string; hour: string; inputs: DataFile[] },
): Promise<{ state: TableState; result: HourResult }> {
  const { store } = deps;
  const { dt, inputs } = hour;
  const paths = inputs.map((file) => file.path);
  const source = `read_parquet(${sqlList(paths)}, union_by_name = true, filename = true, file_row_number = true)`;
  const present = new Set(
    ((await db.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRowObjectsJS() as Array<{ column_name: string }>).map((row) => row.column_name),
  );
  // Exactly the table's columns in its order, typed as the table types them: older files may lack
  // columns added since, or hold a column at its narrower type. dt and hour are the partition's.
  const select = base.schema.fields.map((field) => {
    const type = duckdbTypeOf[field.type];
    if (field.name === 'dt') return `DATE ${sqlString(dt)} AS dt`;
    if (field.name === 'hour') return `${Number(hour.hour)}::INTEGER AS hour`;
    if (present.has(field.name)) return `CAST(${quote(field.name)} AS ${type}) AS ${quote(field.name)}`;
    if (field.required) {
      throw new LakestreamError('ICEBERG_ERROR', `${tableName(base.ref)}: required column ${field.name} is in none of the files of dt=${dt}/hour=${hour.hour}`, {
        context: { table: tableName(base.ref), field: field.name },
      });
    }
    return `NULL::${type} AS ${quote(field.name)}`;
  });
  const ids = base.schema.fields.map((field) => `${sqlString(field.name)}: ${field.id}`).join(', ');
  const local = join(work, `${dt}-${hour.hour}.parquet`);
  const sinkFile = sinkFileSql('filename');
  // Rows keep their archive order (Kafka partition, offset), which backfill uses to break ties;
  // files of earlier compactions (no partition in the name) hold the oldest rows and come first.
  await db.run(`COPY (
      SELECT ${select.join(', ')}
      FROM ${source}
      ORDER BY ${sinkFile.partition} NULLS FIRST, ${sinkFile.firstOffset} NULLS FIRST, filename, file_row_number
    ) TO ${sqlString(local)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, FIELD_IDS {${ids}})`);
  const rows = ((await db.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet(${sqlString(local)})`)).getRowObjectsJS()[0] as { n: bigint }).n;
  const expected = inputs.reduce((sum, file) => sum + file.records, 0n);
  if (rows !== expected) {
    // the snapshot's record counts are what the replace takes out: a mismatch would lose or add rows
    throw new LakestreamError('ICEBERG_ERROR', `${tableName(base.ref)} dt=${dt}/hour=${hour.hour}: merged ${rows} rows, the inputs hold ${expected}`, {
      context: { table: tableName(base.ref), dt, hour: hour.hour },
    });
  }
  const body = readFileSync(local);
  rmSync(local, { force: true });
  const output: DataFile = {
    path: `${locationOf(base)}/data/dt=${dt}/hour=${hour.hour}/compacted-${randomUUID()}.parquet`,
    records: rows,
    sizeBytes: BigInt(body.length),
    partition: inputs[0]!.partition,
  };
  await store.put(keyOf(store, output.path), body);
  // best effort: removeOrphanFiles takes what is left
  const dropOutput = () => store.delete([keyOf(store, output.path)]).catch(() => {});
  const result: HourResult = { dt, hour: hour.hour, inputs: inputs.length, rows: Number(rows), output: output.path };

  let state = base;
  const rewrites = manifestRewrites();
  const giveUp = () => Promise.all([dropOutput(), dropUnusedRewrites(store, rewrites, false)]);
  for (let attempt = 1; ; attempt++) {
    try {
      state = await commitSnapshot(deps, state, { operation: 'replace', added: [output], removed: new Set(paths), writer: 'compaction', rewrites });
      await dropUnusedRewrites(store, rewrites, true);
      return { state, result: { ...result, retries: attempt - 1 } };
    } catch (error) {
      // an unknown outcome may still land, and then the output is live
      if (error instanceof CommitStateUnknown) throw error;
      if (!(error instanceof CommitConflict)) {
        await giveUp();
        throw error;
      }
    }
    // one load per attempt, checked and then planned on: a sink commits every few hundred ms, so
    // the time between reading the newest snapshot and committing on it is the whole window
    const moved = await loadTableState(deps, base.ref);
    if (!moved) throw new LakestreamError('ICEBERG_ERROR', `${tableName(base.ref)} disappeared while compacting dt=${dt}/hour=${hour.hour}`);
    const live = new Set((await liveFiles(deps, moved)).map((entry) => entry.file.path));
    if (!paths.every((path) => live.has(path))) {
      // another compaction (or a backfill) replaced some of the inputs: this merge is stale
      await giveUp();
      return { state: moved, result: { dt, hour: hour.hour, inputs: inputs.length, rows: 0, skipped: 'changed', retries: attempt } };
    }
    if (attempt >= MAX_COMMIT_ATTEMPTS) {
      // the hour is as it was, whole: the next run tries again
      await giveUp();
      return { state: moved, result: { dt, hour: hour.hour, inputs: inputs.length, rows: 0, skipped: 'busy', retries: attempt } };
    }
    state = moved;
  }
}

/**
 * Deletes the data files of a table that its current snapshot does not reference and that are
 * older than `olderThanMs` (default an hour): files replaced by compaction or backfill, and
 * uploads whose commit never happened. The age spares uploads whose commit is still to come and
 * queries still reading a replaced file. Nessie keeps only the current snapshot in the table's
 * metadata, so the current snapshot is the whole test. Returns the deleted keys.
 */
export async function removeOrphanFiles(deps: TableDeps, state: TableState, options: { olderThanMs?: number } = {}): Promise<string[]> {
  const { store } = deps;
  const cutoff = Date.now() - (options.olderThanMs ?? HOUR_MS);
  const listed = await store.listWithTimes(`${keyOf(store, locationOf(state))}/data/`);
  // Live files are read after the listing: a file committed while listing is then known live.
  const current = (await loadTableState(deps, state.ref)) ?? state;
  const live = new Set((await liveFiles(deps, current)).map((entry) => entry.file.path));
  const orphans = listed
    .filter((object) => object.lastModified.getTime() < cutoff && !live.has(`s3://${store.bucket}/${object.key}`))
    .map((object) => object.key);
  await store.delete(orphans);
  return orphans;
}
