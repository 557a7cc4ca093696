import type { ClientContext } from '../platform/context.ts';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Catalog, ResolvedTable } from '../platform/catalog.ts';
import { repoRoot } from '../core/config.ts';
import { openDuckdb, sqlList } from '../core/duckdb.ts';
import { LakestreamError } from '../core/errors.ts';
import type { DataFile, ManifestEntry } from '../core/iceberg/manifest.ts';
import { CommitConflict } from '../core/iceberg/rest-catalog.ts';
import { commitSnapshot, dropUnusedRewrites, ensureTable, keyOf, liveFiles, loadTableState, manifestRewrites, type TableState } from '../core/iceberg/table.ts';
import { columnsOf, sinkFileSql } from '../core/lake-layout.ts';
import { emittedWindowsSql, windowColumns } from '../core/windows.ts';
import { transactionWindows } from '../platform/catalog.ts';

/**
 * Rebuilds the feature history of the transactions features job from the archived
 * `transactions`, one event day (dt partition) at a time, into the lake only: the running counts
 * (`user_transaction_counts`) and the windows (`user_transaction_windows`). This module has no
 * Kafka producer and no Redis client: storage-only is a property of what it can reach, not a flag.
 *
 * The windows are the declaration the stream job runs (`transactionWindows`), computed by
 * `emittedWindowsSql` over the whole archive once per run: one row per transaction on time, with
 * its real Kafka position, the same rows the stream emits (docs/decisions/0020); a row's day is
 * the day of its `windows_as_of`.
 *
 * Counts semantics, matching the streaming features job: one output row per transaction event with
 * the user's running total. Events are ordered per user by event time, ties by archive position
 * (Kafka partition, first offset of the file, row in the file), which is the job's processing
 * order whenever a user's events are produced in time order. The total before a day is seeded
 * from every archived day before it, so `--from` never restarts counts at zero.
 *
 * A day is replaced by one Iceberg overwrite snapshot of the feature table: the day's live files
 * out, the new hour files in, committed on the snapshot the plan was made on. A reader sees the
 * old day or the new one, never both, never neither; a crash before the commit leaves the old
 * day (its uploads are orphans that orphan removal deletes). New files are named from a hash of
 * the archive files they were computed from, so a re-run over an unchanged archive finds the
 * day already in place and commits nothing. (The hash is of the day's computed rows, so it
 * holds whatever an earlier day's archive can change in them.) A commit refused because the table moved (the live
 * sink appended late rows of the day) recomputes the day from the archive as it then is.
 *
 * Late transactions: the stream's counts row of a transaction carries the transaction's Kafka
 * position, and the two tables are written by separate sinks, so either can be ahead. A day keeps
 * the stream rows whose transaction lies past what the archive held when the run read it (the
 * run could not count those), and records that position per partition in the table (its
 * cover); the feature table's sink drops stream rows below the cover of their day, the
 * backfill's row stands for them. So no late transaction is lost or counted twice.
 */
export interface BackfillLayout {
  transactions: ResolvedTable;
  counts: ResolvedTable;
  windows: ResolvedTable;
  /** Where the catalog puts the namespace's tables (`s3://<bucket>/<warehouse root>/`). */
  warehouse: string;
  /** Where each day's run record goes (`<root>/<table>/dt=<day>.json`). */
  runRecords: string;
}

const FEATURE_BALANCE_SQL = `
  WITH t AS (SELECT user_id, transaction_timestamp_millis AS event_at, count(*) n FROM transactions GROUP BY ALL),
       f AS (SELECT user_id, event_timestamp_millis AS event_at, count(*) n FROM user_transaction_counts GROUP BY ALL)
  SELECT (SELECT count(*) FROM transactions)::BIGINT archived, (SELECT count(*) FROM user_transaction_counts)::BIGINT features,
         (SELECT count(*) FROM t FULL JOIN f USING (user_id, event_at) WHERE t.n IS DISTINCT FROM f.n)::BIGINT unmatched`;

/**
 * Whether the feature table holds each archived transaction once: its row count, the archive's,
 * and how many (user, event time) pairs count differently in the two (0 when they agree), by
 * `query` over the lake's views; the chaos runs and the tests check the backfill with it.
 */
export async function featureBalance(query: (sql: string) => Promise<Array<Record<string, unknown>>>): Promise<{ archived: number; features: number; unmatched: number }> {
  const [row] = await query(FEATURE_BALANCE_SQL);
  return { archived: Number(row!.archived), features: Number(row!.features), unmatched: Number(row!.unmatched) };
}

/** The feature tables the backfill rebuilds, by the name `--feature` takes. */
export const BACKFILLED_FEATURES = ['counts', 'windows'] as const;
export type BackfilledFeature = (typeof BACKFILLED_FEATURES)[number];

export interface DayResult {
  dt: string;
  filesRead: number;
  rowsRead: number;
  rowsWritten: number;
  /** Stream rows of the day kept as they were: their transactions were not archived yet. */
  rowsKept: number;
  filesWritten: string[];
  filesRemoved: string[];
  /** Commits refused because a sink or a compaction moved the table, and made again on top of it. */
  rebases: number;
}

export interface DayPlan {
  dt: string;
  files: number;
}

/** Where a (namespaced) catalog's backfill reads and writes. */
export function backfillLayout(catalog: Catalog, bucket: string): BackfillLayout {
  return { transactions: catalog.tables.transactions, counts: catalog.tables.userTransactionCounts, windows: catalog.tables.userTransactionWindows, warehouse: `s3://${bucket}/${catalog.roots.warehouse}/`, runRecords: catalog.roots.backfillManifests };
}

const DAY_MS = 86_400_000;
const dayOf = (entry: ManifestEntry) => new Date(entry.file.partition.dt * DAY_MS).toISOString().slice(0, 10);

/** The archived event days in [from, to] (inclusive, YYYY-MM-DD) with their file counts. */
export async function planDays(context: ClientContext, layout: BackfillLayout, range: { from?: string; to?: string }): Promise<DayPlan[]> {
  const deps = context.lakeTables();
  // the store first, so an unreachable S3 is named even when no table exists yet
  await deps.store.hasAny(keyOf(deps.store, layout.warehouse));
  const state = await loadTableState(deps, layout.transactions.iceberg);
  const files = new Map<string, number>();
  for (const entry of state ? await liveFiles(deps, state) : []) {
    const dt = dayOf(entry);
    if ((range.from && dt < range.from) || (range.to && dt > range.to)) continue;
    files.set(dt, (files.get(dt) ?? 0) + 1);
  }
  return [...files].sort(([a], [b]) => a.localeCompare(b)).map(([dt, count]) => ({ dt, files: count }));
}

export interface DayBackfiller {
  run(day: DayPlan, options?: { dryRun?: boolean; afterFirstUpload?: () => Promise<void> }): Promise<DayResult>;
  close(): void;
}

/** Commits of a day refused because the table moved, each rebased on the newer snapshot. */
const MAX_REBASES = 50;

/** A day's commit as planned, and the table snapshot (with the day's live files) it goes on. */
interface PendingDay {
  base: TableState;
  dayFiles: Set<string>;
  added: DataFile[];
  removed: Set<string>;
}


/** Opens DuckDB (bounded memory, spilling to disk) and the lake's tables for a run of days of one feature table. */
export async function openDayBackfiller(context: ClientContext, layout: BackfillLayout, memoryLimit = '1GB', feature: BackfilledFeature = 'counts'): Promise<DayBackfiller> {
  const work = mkdtempSync(join(tmpdir(), 'lakestream-backfill-'));
  const duck = await openDuckdb(context.config, { memory_limit: memoryLimit, temp_directory: join(work, 'spill'), preserve_insertion_order: 'false' });
  const deps = context.lakeTables();
  const { store } = deps;
  const db = duck.connection;
  const sinkFile = sinkFileSql('filename');
  const target = layout[feature];
  const targetColumns = columnsOf(JSON.parse(readFileSync(join(repoRoot, 'schemas', target.valueSchema), 'utf8')));
  const valueFields = targetColumns.map((column) => column.name);
  const quoted = (names: string[]) => names.map((name) => `"${name}"`).join(', ');
  // DuckDB adds a window's doubles in whatever order its threads meet them, so the same rows can
  // differ in their last bits from one run to the next: the name of a day's files hashes them
  // rounded, or a re-run over the same archive would replace every day with itself
  const fingerprinted = targetColumns.map(({ name, sqlType }) => (sqlType === 'DOUBLE' || sqlType === 'FLOAT' ? `round("${name}", 6)` : `"${name}"`)).join(', ');
  // rows of one user next to each other, in the order the stream wrote them
  const orderBy = feature === 'counts' ? 'user_id, total_transactions_count' : 'user_id, events';
  const hourOf = (eventTime: string) => `((${eventTime} // 3600000) % 24)::INTEGER`;
  /**
   * The archive as of the run's start: its live files by day, how far it holds each partition of
   * its topic (the cover a recomputed day records), and the per-user daily counts.
   */
  let archive: Promise<{ byDay: Map<string, string[]>; cover: Record<number, number> }> | undefined;

  function readArchive() {
    archive ??= (async () => {
      const state = await loadTableState(deps, layout.transactions.iceberg);
      const byDay = new Map<string, string[]>();
      for (const entry of state ? await liveFiles(deps, state) : []) byDay.set(dayOf(entry), [...(byDay.get(dayOf(entry)) ?? []), entry.file.path]);
      const all = [...byDay.values()].flat();
      if (feature === 'counts') {
        // Per-user, per-day counts of the whole archive, once per run: the seeds of every day.
        await db.run(`CREATE OR REPLACE TEMP TABLE daily_counts AS
          SELECT user_id, dt::VARCHAR AS dt, count(*)::BIGINT AS n
          FROM ${all.length ? `read_parquet(${sqlList(all)}, union_by_name = true)` : '(SELECT NULL::INTEGER AS user_id, NULL::DATE AS dt WHERE false)'}
          GROUP BY ALL`);
      } else {
        await db.run(`CREATE OR REPLACE TEMP TABLE window_rows AS ${await windowRowsSql(all)}`);
      }
      return { byDay, cover: state?.offsets?.next ?? {} };
    })();
    return archive;
  }

  /**
   * Every window row of the archive, once per run (lateness depends on every earlier record of a
   * partition, so no day can be computed alone). Transactions archived before Kafka positions
   * were kept have none to replay lateness from; the stream had no windows then either.
   */
  async function windowRowsSql(all: string[]): Promise<string> {
    const columns = windowColumns(transactionWindows, 'amount');
    const empty = `SELECT NULL::INTEGER AS user_id, NULL::BIGINT AS windows_as_of, NULL::BIGINT AS events, ${columns.map(({ name, aggregate }) => `NULL::${aggregate === 'count' ? 'BIGINT' : 'DOUBLE'} AS "${name}"`).join(', ')},
      NULL::INTEGER AS source_partition, NULL::BIGINT AS source_offset, NULL::VARCHAR AS as_of_day WHERE false`;
    if (!all.length) return empty;
    const [positioned] = (await db.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM parquet_schema(${sqlList(all)}) WHERE name = '_kafka_offset'`)).getRowObjectsJS() as Array<{ n: number }>;
    if (!positioned!.n) return empty;
    const events = `SELECT user_id AS entity, transaction_timestamp_millis AS event_time, amount AS value, _kafka_partition AS kafka_partition, _kafka_offset AS kafka_offset
      FROM read_parquet(${sqlList(all)}, union_by_name = true) WHERE _kafka_offset IS NOT NULL`;
    return `SELECT entity::INTEGER AS user_id, as_of::BIGINT AS windows_as_of, events::BIGINT AS events, ${columns.map(({ name }) => `"${name}"`).join(', ')},
        kafka_partition::INTEGER AS source_partition, kafka_offset::BIGINT AS source_offset, epoch_ms(as_of)::DATE::VARCHAR AS as_of_day
      FROM (${emittedWindowsSql(transactionWindows, 'amount', events)})`;
  }

  const position = target.sourcePosition;

  /**
   * The day's stream rows whose transaction the archive did not hold when the run read it (the
   * counts can reach the feature table before the transactions reach theirs): the backfill cannot
   * compute them, so they stay as the stream wrote them until a later run can.
   */
  async function keptRows(paths: string[], cover: Record<number, number>): Promise<string | undefined> {
    if (!position || !paths.length) return undefined;
    const withPositions = (await db.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM parquet_schema(${sqlList(paths)}) WHERE name = '${position.offset}'`)).getRowObjectsJS()[0] as { n: number };
    if (!withPositions.n) return undefined;
    const covered = Object.entries(cover).map(([partition, next]) => `(${Number(partition)}, ${Number(next)})`);
    return `SELECT ${quoted(valueFields)}, ${hourOf(target.eventTimeField)} AS hour
      FROM read_parquet(${sqlList(paths)}, union_by_name = true)
      ${covered.length ? `LEFT JOIN (VALUES ${covered.join(', ')}) AS cover(p, next) ON ${position.partition} = cover.p` : ''}
      WHERE ${position.offset} IS NOT NULL AND ${position.offset} >= ${covered.length ? 'coalesce(cover.next, 0)' : '0'}`;
  }

  /**
   * The day's commit again on a table that moved since the plan, without computing the day again:
   * the feature sink appends all the time, and a recomputation per refused commit could lose the
   * race for ever. What the others committed meanwhile to the day is a set of new files: stream
   * rows past the cover stay (the backfill keeps such rows anyway) unless this commit holds them
   * already, rows below it, or rows of an older backfill, are this run's to replace, so an hour
   * holding any of those is rewritten without them.
   * A file this commit removes that is no longer live was merged by a compaction into one of the
   * new files, which that filter then covers. Undefined when the day must be computed again: a
   * backfill of the day committed another cover.
   */
  async function rebaseDay(dt: string, pending: PendingDay, cover: Record<number, number>, ownFiles: string[], digest: string): Promise<PendingDay | undefined> {
    const fresh = await loadTableState(deps, target.iceberg);
    if (!fresh || !position || JSON.stringify(fresh.covers[dt] ?? null) !== JSON.stringify(pending.base.covers[dt] ?? null)) return undefined;
    const freshDay = (await liveFiles(deps, fresh)).filter((entry) => dayOf(entry) === dt);
    const newcomers = freshDay.filter((entry) => !pending.dayFiles.has(entry.file.path));
    if (newcomers.some((entry) => ownFiles.includes(entry.file.path))) return undefined;
    const freshPaths = new Set(freshDay.map((entry) => entry.file.path));
    const next: PendingDay = { base: fresh, dayFiles: freshPaths, added: [...pending.added], removed: new Set([...pending.removed].filter((path) => freshPaths.has(path))) };
    const byHour = new Map<number, string[]>();
    for (const entry of newcomers) byHour.set(entry.file.partition.hour, [...(byHour.get(entry.file.partition.hour) ?? []), entry.file.path]);
    for (const [hour, paths] of byHour) {
      const past = await keptRows(paths, cover);
      // a compaction merges the day's older files, whose stream rows past the cover this commit
      // already carries: a row whose transaction one of its own files of the hour holds is not
      // kept twice
      const own = next.added.filter((file) => file.partition.hour === hour).map((file) => file.path);
      const keep = past && own.length
        ? `SELECT * FROM (${past}) AS past WHERE NOT EXISTS (SELECT 1 FROM read_parquet(${sqlList(own)}, union_by_name = true) AS own
             WHERE own.${position.offset} IS NOT NULL AND own.${position.partition} = past.source_partition AND own.${position.offset} = past.source_offset)`
        : past;
      const [counted] = (await db.runAndReadAll(`SELECT (SELECT count(*) FROM read_parquet(${sqlList(paths)}))::BIGINT AS total, ${keep ? `(SELECT count(*) FROM (${keep}))` : '0'}::BIGINT AS kept`)).getRowObjectsJS() as Array<{ total: bigint; kept: bigint }>;
      if (counted!.total === counted!.kept) continue;
      for (const path of paths) next.removed.add(path);
      if (!keep || !counted!.kept) continue;
      const name = createHash('sha256').update(`${digest}\n${paths.sort().join('\n')}`).digest('hex').slice(0, 16);
      next.added.push(await writeKeptFile(pending.base, dt, hour, keep, name));
    }
    return next;
  }

  /** One hour's stream rows, kept past the cover, as a data file of the feature table. */
  async function writeKeptFile(state: TableState, dt: string, hour: number, keep: string, name: string): Promise<DataFile> {
    const location = state.loaded.metadata.location.replace(/\/+$/, '');
    const path = `${location}/data/dt=${dt}/hour=${String(hour).padStart(2, '0')}/backfill-kept-${name}.parquet`;
    const local = join(work, `kept-${name}.parquet`);
    const ids = state.schema.fields.map((field) => `'${field.name}': ${field.id}`).join(', ');
    const columns = state.schema.fields.map((field) => `"${field.name}"`).join(', ');
    await db.run(`COPY (SELECT ${columns} FROM (SELECT *, DATE '${dt}' AS dt FROM (${keep})) ORDER BY ${orderBy})
      TO '${local}' (FORMAT parquet, COMPRESSION zstd, FIELD_IDS {${ids}})`);
    const body = readFileSync(local);
    const count = (await db.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet('${local}')`)).getRowObjectsJS()[0] as { n: bigint };
    rmSync(local, { force: true });
    await store.put(keyOf(store, path), body);
    return { path, records: count.n, sizeBytes: BigInt(body.length), partition: { dt: Date.parse(`${dt}T00:00:00Z`) / DAY_MS, hour } };
  }

  async function runDay(day: DayPlan, options: { dryRun?: boolean; afterFirstUpload?: () => Promise<void> }, attempt: number): Promise<DayResult> {
    const { dt } = day;
    const { byDay, cover } = await readArchive();
    const inputs = byDay.get(dt) ?? [];
    const dayCounts = () => `
      WITH day AS (
        SELECT user_id, transaction_timestamp_millis, hour, file_row_number,
               ${sinkFile.partition} AS kafka_partition,
               ${sinkFile.firstOffset} AS first_offset,
               filename
        FROM read_parquet(${sqlList(inputs)}, union_by_name = true, filename = true, file_row_number = true)
      ),
      seed AS (SELECT user_id, sum(n)::BIGINT AS before FROM daily_counts WHERE dt < '${dt}' GROUP BY user_id)
      SELECT day.user_id::INTEGER AS user_id,
             (coalesce(seed.before, 0) + row_number() OVER (
                PARTITION BY day.user_id
                ORDER BY transaction_timestamp_millis, kafka_partition, first_offset, filename, file_row_number))::BIGINT AS total_transactions_count,
             transaction_timestamp_millis::BIGINT AS event_timestamp_millis,
             DATE '${dt}' AS dt,
             day.hour::INTEGER AS hour
      FROM day LEFT JOIN seed USING (user_id)`;
    // the day's rows this run computes, in the table's columns, source positions included
    const computed =
      feature === 'counts'
        ? `SELECT user_id, total_transactions_count, event_timestamp_millis, NULL::INTEGER AS source_partition, NULL::BIGINT AS source_offset, dt, hour FROM (${dayCounts()})`
        : `SELECT ${quoted(valueFields)}, DATE '${dt}' AS dt, ${hourOf('windows_as_of')} AS hour FROM window_rows WHERE as_of_day = '${dt}'`;
    let table: TableState = await ensureTable(deps, target.iceberg, targetColumns, layout.warehouse, 'user_id');
    const location = table.loaded.metadata.location.replace(/\/+$/, '');
    const replaced = (await liveFiles(deps, table)).filter((entry) => dayOf(entry) === dt);
    const kept = await keptRows(replaced.map((entry) => entry.file.path), cover);
    const dayRows = `
      SELECT ${quoted(valueFields)}, dt, hour, false AS kept FROM (${computed})
      ${kept ? `UNION ALL SELECT ${quoted(valueFields)}, DATE '${dt}', hour, true FROM (${kept})` : ''}`;

    const [plan] = (
      await db.runAndReadAll(`SELECT count(*)::BIGINT AS n, list(DISTINCT hour ORDER BY hour) AS hours,
        count(*) FILTER (WHERE kept)::BIGINT AS kept, coalesce(sum(hash(${fingerprinted})), 0)::VARCHAR AS fingerprint
        FROM (${dayRows})`)
    ).getRowObjectsJS() as Array<{ n: bigint; hours: number[]; kept: bigint; fingerprint: string }>;
    // named from what they hold: the same rows, the same names, whatever the archive's files
    const digest = createHash('sha256').update(`${dt}\n${plan!.n}:${plan!.fingerprint}`).digest('hex').slice(0, 16);
    const fileOf = (hour: number) => `${location}/data/dt=${dt}/hour=${String(hour).padStart(2, '0')}/backfill-${digest}.parquet`;
    const files = plan!.hours.map(fileOf);
    const rows = Number(plan!.n);
    const result: DayResult = {
      dt,
      filesRead: inputs.length,
      rowsRead: rows - Number(plan!.kept),
      rowsWritten: rows,
      rowsKept: Number(plan!.kept),
      filesWritten: files,
      filesRemoved: replaced.map((e) => e.file.path).filter((path) => !files.includes(path)),
      rebases: 0,
    };
    if (options.dryRun) return result;
    const live = new Set(replaced.map((entry) => entry.file.path));
    if (files.length === live.size && files.every((path) => live.has(path))) {
      // this very computation is what the table holds for the day already
      return { ...result, filesWritten: [], filesRemoved: [] };
    }

    // One pass writes the day's hour files locally, sorted by user so row groups prune by
    // user_id, with the table's field ids; nothing is visible before the commit.
    const local = join(work, `dt=${dt}`);
    rmSync(local, { recursive: true, force: true });
    const ids = table.schema.fields.map((field) => `'${field.name}': ${field.id}`).join(', ');
    const columns = table.schema.fields.map((field) => `"${field.name}"`).join(', ');
    const unknown = table.schema.fields.map((field) => field.name).filter((name) => ![...valueFields, 'dt', 'hour'].includes(name));
    if (unknown.length) throw new LakestreamError('USAGE', `${target.view} has columns the backfill does not compute: ${unknown.join(', ')}`);
    await db.run('SET preserve_insertion_order = true');
    await db.run(`COPY (SELECT ${columns}, hour AS __hour FROM (${dayRows}) ORDER BY hour, ${orderBy})
      TO '${local}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, PARTITION_BY (__hour), FILENAME_PATTERN 'backfill', FIELD_IDS {${ids}})`);
    await db.run('SET preserve_insertion_order = false');
    const added: DataFile[] = [];
    const hours = plan!.hours;
    const upload = async (index: number) => {
      const dir = join(local, `__hour=${hours[index]}`);
      const [name] = readdirSync(dir);
      const body = readFileSync(join(dir, name!));
      const count = (await db.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet('${join(dir, name!)}')`)).getRowObjectsJS()[0] as { n: bigint };
      await store.put(keyOf(store, files[index]!), body);
      added[index] = { path: files[index]!, records: count.n, sizeBytes: BigInt(body.length), partition: { dt: Date.parse(`${dt}T00:00:00Z`) / DAY_MS, hour: hours[index]! } };
    };
    if (hours.length) {
      await upload(0);
      await options.afterFirstUpload?.();
    }
    for (let index = 1; index < hours.length; index += 8) {
      await Promise.all(Array.from({ length: Math.min(8, hours.length - index) }, (_, k) => upload(index + k)));
    }
    rmSync(local, { recursive: true, force: true });
    let pending: PendingDay = {
      base: table,
      dayFiles: live,
      added: added.filter((file) => !live.has(file.path)),
      removed: new Set([...live].filter((path) => !files.includes(path))),
    };
    const rewrites = manifestRewrites();
    for (let rebases = 0; ; rebases++) {
      try {
        table = await commitSnapshot(deps, pending.base, {
          operation: 'overwrite',
          added: pending.added,
          removed: pending.removed,
          // stream rows of the day whose transaction the archive held are this computation's now
          ...(position ? { covers: { ...pending.base.covers, [dt]: cover } } : {}),
          writer: 'backfill',
          rewrites,
        });
        await dropUnusedRewrites(store, rewrites, true);
        result.filesWritten = [...result.filesWritten, ...pending.added.map((file) => file.path).filter((path) => !files.includes(path))];
        result.filesRemoved = [...pending.removed];
        break;
      } catch (error) {
        // any other failure leaves the rewrites: an unknown outcome may still land and list them
        if (!(error instanceof CommitConflict)) throw error;
        const rebased = rebases < MAX_REBASES ? await rebaseDay(dt, pending, cover, files, digest) : undefined;
        if (rebased) {
          pending = rebased;
          result.rebases++;
          continue;
        }
        await dropUnusedRewrites(store, rewrites, false);
        if (attempt >= 5) throw error;
        // another backfill of the day committed meanwhile: computed again from the archive as it now is
        archive = undefined;
        return runDay(day, options, attempt + 1);
      }
    }
    // the run's record for operators (the dashboard lists them); the table itself needs none
    await store.putJson(`${layout.runRecords}/${target.view}/dt=${dt}.json`, {
      dt,
      status: 'done',
      snapshot: String(table.snapshot?.['snapshot-id'] ?? ''),
      rows,
      files: files.length,
      at: new Date().toISOString(),
    });
    return result;
  }

  return {
    run: (day, options = {}) => runDay(day, options, 0),
    close() {
      duck.close();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
