import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Catalog } from '../core/catalog.ts';
import type { Config } from '../core/config.ts';
import { sinkFileSql } from '../core/lake-layout.ts';
import { openDuckdb } from '../core/duckdb.ts';
import { createObjectStore, type ObjectStore } from '../core/object-store.ts';
import { createS3 } from '../core/s3.ts';

/**
 * Rebuilds the `user_transaction_counts` feature history from the archived `transactions`, one
 * event day (dt partition) at a time, into the lake only. This module has no Kafka producer and
 * no Redis client: storage-only is a property of what it can reach, not a flag.
 *
 * Semantics, matching the streaming features job: one output row per transaction event with
 * the user's running total. Events are ordered per user by event time, ties by archive position
 * (Kafka partition, first offset of the file, row in the file), which is the job's processing
 * order whenever a user's events are produced in time order. The total before a day is seeded
 * from every archived day before it, so `--from` never restarts counts at zero.
 *
 * Idempotent replacement of a day: the day's new files have fixed names
 * (`dt=D/hour=HH/backfill.parquet`); a manifest under `_lakestream/backfill/` records them with
 * the objects they replace; the new files are written, then the stale ones deleted, then the
 * manifest is marked done. Re-running, or running after a crash at any point, ends in the same
 * objects with the same rows. Backfill output wins over live output for the days it covers.
 */
export interface BackfillLayout {
  /** Key prefix of the archive, e.g. `transactions` (or `<namespace>/transactions`). */
  transactionsTable: string;
  /** Key prefix of the feature table, e.g. `features/user_transaction_counts`. */
  countsTable: string;
  /** Where manifests go, e.g. `_lakestream/backfill`. */
  manifestRoot: string;
}

export interface DayResult {
  dt: string;
  filesRead: number;
  rowsRead: number;
  rowsWritten: number;
  filesWritten: string[];
  filesRemoved: string[];
}

export interface DayPlan {
  dt: string;
  files: number;
}

interface Manifest {
  dt: string;
  status: 'writing' | 'done';
  files: string[];
  replaces: string[];
  rows: number;
  at: string;
}

/** Where a (namespaced) catalog's backfill reads and writes. */
export function backfillLayout(catalog: Catalog): BackfillLayout {
  return { transactionsTable: catalog.tables.transactions.path, countsTable: catalog.tables.userTransactionCounts.path, manifestRoot: catalog.roots.backfillManifests };
}

/** The archived event days in [from, to] (inclusive, YYYY-MM-DD) with their file counts. */
export async function planDays(store: ObjectStore, layout: BackfillLayout, range: { from?: string; to?: string }): Promise<DayPlan[]> {
  const keys = await store.list(`${layout.transactionsTable}/dt=`);
  const files = new Map<string, number>();
  for (const key of keys) {
    const dt = /\/dt=(\d{4}-\d{2}-\d{2})\//.exec(key)?.[1];
    if (!dt || !key.endsWith('.parquet')) continue;
    if ((range.from && dt < range.from) || (range.to && dt > range.to)) continue;
    files.set(dt, (files.get(dt) ?? 0) + 1);
  }
  return [...files].sort(([a], [b]) => a.localeCompare(b)).map(([dt, count]) => ({ dt, files: count }));
}

export interface DayBackfiller {
  run(day: DayPlan, options?: { dryRun?: boolean; afterFirstUpload?: () => Promise<void> }): Promise<DayResult>;
  close(): void;
}

/** Opens DuckDB (bounded memory, spilling to disk) and the object store for a run of days. */
export async function openDayBackfiller(config: Config, layout: BackfillLayout, memoryLimit = '1GB'): Promise<DayBackfiller> {
  const work = mkdtempSync(join(tmpdir(), 'lakestream-backfill-'));
  const duck = await openDuckdb(config, { memory_limit: memoryLimit, temp_directory: join(work, 'spill'), preserve_insertion_order: 'false' });
  const s3 = createS3(config);
  const store: ObjectStore = createObjectStore(s3, config.LAKE_BUCKET);
  const bucket = config.LAKE_BUCKET;
  const archive = `s3://${bucket}/${layout.transactionsTable}`;
  const db = duck.connection;
  const sinkFile = sinkFileSql('filename');
  let dailyCounts: Promise<void> | undefined;

  /**
   * Per-user, per-day transaction counts of the whole archive, computed once per run: the seeds
   * of every day. It reads only the user_id column and the dt folder names.
   */
  function ensureDailyCounts(): Promise<void> {
    dailyCounts ??= db.run(`CREATE OR REPLACE TEMP TABLE daily_counts AS
      SELECT user_id, dt::VARCHAR AS dt, count(*)::BIGINT AS n
      FROM read_parquet('${archive}/dt=*/hour=*/*.parquet', hive_partitioning = true, union_by_name = true)
      GROUP BY ALL`).then(() => {});
    return dailyCounts;
  }

  return {
    async run(day, options = {}) {
      const { dt } = day;
      await ensureDailyCounts();
      const dayCounts = `
        WITH day AS (
          SELECT user_id, transaction_timestamp_millis, hour, file_row_number,
                 ${sinkFile.partition} AS kafka_partition,
                 ${sinkFile.firstOffset} AS first_offset,
                 filename
          FROM read_parquet('${archive}/dt=${dt}/hour=*/*.parquet', hive_partitioning = true, union_by_name = true, filename = true, file_row_number = true)
        ),
        seed AS (SELECT user_id, sum(n)::BIGINT AS before FROM daily_counts WHERE dt < '${dt}' GROUP BY user_id)
        SELECT day.user_id::INTEGER AS user_id,
               (coalesce(seed.before, 0) + row_number() OVER (
                  PARTITION BY day.user_id
                  ORDER BY transaction_timestamp_millis, kafka_partition, first_offset, filename, file_row_number))::BIGINT AS total_transactions_count,
               transaction_timestamp_millis::BIGINT AS event_timestamp_millis,
               lpad(CAST(day.hour AS VARCHAR), 2, '0') AS hour
        FROM day LEFT JOIN seed USING (user_id)`;
      const dayPrefix = `${layout.countsTable}/dt=${dt}/`;
      const fileOf = (hour: string) => `${dayPrefix}hour=${hour}/backfill.parquet`;
      const existing = await store.list(dayPrefix);

      if (options.dryRun) {
        const [plan] = (await db.runAndReadAll(`SELECT count(*)::BIGINT AS n, list(DISTINCT hour ORDER BY hour) AS hours FROM (${dayCounts})`)).getRowObjectsJS() as Array<{ n: bigint; hours: string[] }>;
        const files = plan!.hours.map(fileOf);
        return { dt, filesRead: day.files, rowsRead: Number(plan!.n), rowsWritten: Number(plan!.n), filesWritten: files, filesRemoved: existing.filter((key) => !files.includes(key)) };
      }

      // One pass writes the day's hour files locally (sorted by user, so row groups prune by
      // user_id); nothing reaches the lake before the manifest names it.
      const local = join(work, `dt=${dt}`);
      rmSync(local, { recursive: true, force: true });
      await db.run('SET preserve_insertion_order = true');
      const written = (await db.runAndReadAll(`COPY (SELECT * FROM (${dayCounts}) ORDER BY hour, user_id, total_transactions_count)
        TO '${local}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, PARTITION_BY (hour), FILENAME_PATTERN 'backfill')`)).getRowObjectsJS()[0] as { Count: bigint };
      await db.run('SET preserve_insertion_order = false');
      const hours = readdirSync(local)
        .map((name) => /^hour=(\d{2})$/.exec(name)?.[1])
        .filter((hour): hour is string => !!hour)
        .sort();
      const files = hours.map(fileOf);
      const replaces = existing.filter((key) => !files.includes(key));
      const rows = Number(written.Count);
      const result: DayResult = { dt, filesRead: day.files, rowsRead: rows, rowsWritten: rows, filesWritten: files, filesRemoved: replaces };

      const manifestKey = `${layout.manifestRoot}/${layout.countsTable.split('/').pop()}/dt=${dt}.json`;
      const manifest = (status: Manifest['status']): Manifest => ({ dt, status, files, replaces, rows: result.rowsWritten, at: new Date().toISOString() });
      await store.putJson(manifestKey, manifest('writing'));
      const upload = async (index: number) => {
        const dir = join(local, `hour=${hours[index]}`);
        const [name] = readdirSync(dir);
        await store.put(files[index]!, readFileSync(join(dir, name!)));
      };
      if (hours.length) {
        await upload(0);
        await options.afterFirstUpload?.();
      }
      // the rest of the day's hours, 8 uploads at a time
      for (let index = 1; index < hours.length; index += 8) {
        await Promise.all(Array.from({ length: Math.min(8, hours.length - index) }, (_, k) => upload(index + k)));
      }
      rmSync(local, { recursive: true, force: true });
      await store.delete(replaces);
      await store.putJson(manifestKey, manifest('done'));
      return result;
    },
    close() {
      duck.close();
      s3.destroy();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
