import { z } from 'zod';
import type { Catalog, ResolvedTable } from '../../platform/catalog.ts';
import type { ClientContext } from '../../platform/context.ts';
import { LakestreamError, errorMessage, isRetriable } from '../../core/errors.ts';
import { randomUUID } from 'node:crypto';
import { ensureLakeTable } from '../../platform/lake.ts';
import type { DataFile } from '../../core/iceberg/manifest.ts';
import { CommitConflict, CommitStateUnknown } from '../../core/iceberg/rest-catalog.ts';
import { evolveSchema } from '../../core/iceberg/schema.ts';
import { commitSnapshot, keyOf, liveFiles, SUMMARY, type TableDeps, type TableState } from '../../core/iceberg/table.ts';
import { KAFKA_POSITION_COLUMNS, columnsOf, eventTimePartition } from '../../core/lake-layout.ts';
import { metrics, secondsSince } from '../../core/metrics.ts';
import { LatencyRecorder } from '../../core/stats.ts';
import { retry, sleep } from '../../core/retry.ts';
import { createStreamJob, topicReset, type PartitionBatch, type StreamHandler, type StreamJob, type StreamJobControls, type StreamRecord } from '../../core/runtime/index.ts';
import { ParquetWriter, type Column, type StagedRows } from './parquet.ts';

export const lakeSinkOptionsSchema = z
  .object({
    flushRows: z.number().int().positive().default(100_000).describe('Flush a partition when it buffers this many rows.'),
    flushBytes: z.number().int().positive().default(32 * 1024 * 1024).describe('Flush a partition when its buffer reaches this many bytes.'),
    // 5 s keeps a row's way into the table within seconds; compaction merges the small files
    flushIntervalMs: z.number().int().positive().default(5_000).describe('Flush a partition whose oldest buffered record is this old.'),
    maxBufferedBytes: z.number().int().positive().default(64 * 1024 * 1024).describe('Bound over buffers and flushes in flight: the largest buffer is flushed first.'),
  })
  .strict();

export type LakeSinkOptions = z.input<typeof lakeSinkOptionsSchema>;

export interface LakeSinkStats {
  rowsWritten: number;
  /** Rows decoded and waiting for their partition's next flush. */
  buffered: number;
  filesWritten: number;
  bytesWritten: number;
  flushes: number;
  /** Table commits (each one round of flushes), refused commits planned again, and fenced flushes. */
  commits: number;
  conflicts: number;
  fenced: number;
  /** Catalog commit latency of this sink's commits. */
  commitP50Ms: number;
  commitP99Ms: number;
  /** Rows of a derived table dropped because a backfill of their day had counted their input. */
  superseded: number;
}

/** The rows of one output file: one event hour of one partition, written with one schema, staged in DuckDB. */
interface FileGroup {
  dt: string;
  hour: string;
  columns: Column[];
  stage: StagedRows;
  first: number;
  last: number;
}

/** The rows of one offset range of a partition, on their way to the lake. */
interface Flush {
  from: number;
  to: number;
  groups: FileGroup[];
  rows: number;
  bytes: number;
  /** The backfill covers its rows were checked against (see `PartitionBuffer.covers`). */
  covers: string | undefined;
}

interface PartitionBuffer {
  partition: number;
  /** The id of the topic the partition's offsets belong to, read when the partition was loaded. */
  topicId: string;
  /**
   * The table's next offset for this partition as this buffer last knew it (undefined: the table
   * holds nothing of it). A commit goes through only if the table still says exactly this: the
   * per-partition compare-and-set that fences a second owner.
   */
  committedNext: number | undefined;
  /** Last offset handed to a flush (committed or in flight). */
  flushedThrough: number;
  /** Highest offset handled: buffered, or dead-lettered. */
  lastSeen: number;
  groups: Map<string, FileGroup>;
  rows: number;
  bytes: number;
  oldestAt: number | undefined;
  /** The partition's flushes run one after another, each after the previous one committed. */
  flushing: Promise<void>;
  /** Set when the table moved this partition past what this buffer expected: it must not write again. */
  fenced: boolean;
  /**
   * A derived table's backfill covers the buffered rows were checked against (the summary value);
   * undefined once rows were checked against different ones. A flush commits only if the table
   * still has these: a backfill committed meanwhile makes the rows be read and checked again.
   */
  covers: string | undefined;
}

/** A flush whose files are uploaded, waiting for the table commit that makes them visible. */
interface ReadyFlush {
  buffer: PartitionBuffer;
  job: Flush;
  files: DataFile[];
  columns: Column[][];
  done: (outcome: 'committed' | 'fenced') => void;
  failed: (error: unknown) => void;
}

/**
 * Records a lake sink takes per fetch, in either profile. A sink's batch has no fixed cost to
 * spread (no Kafka transaction: the table commit is per flush), while every record of a batch is
 * live until the batch is handled, so each young-generation collection meanwhile copies the whole
 * batch: at 20,000 a sink spent ~25% more CPU than at 5,000 on 1M records (docs/decisions/0015).
 */
export const LAKE_SINK_BATCH_SIZE = 5_000;
const HOUR_MS = 3_600_000;
const coversKey = (state: TableState) => state.snapshot?.summary[SUMMARY.covers] ?? '';
const DAY_MS = 24 * HOUR_MS;

/**
 * Archives a topic to its Iceberg table in the lake, exactly once: a lake table of the catalog,
 * written by its sink job on the stream-job runtime.
 *
 * Each flush uploads Parquet files (one per event hour and schema, named at random: a file no
 * snapshot references does not exist for any reader) and commits them as one Iceberg append
 * whose snapshot summary carries the per-partition offsets the table now holds. The table, not
 * the Kafka offset, is the truth of what is archived: on assignment the sink seeks to the
 * table's offsets, and Kafka offsets are committed only after the table commit. A commit is
 * made on the table's current snapshot and requires, per partition, that the table's offset is
 * still the one this sink started its flush from; a second owner of a partition (a paused
 * instance that came back after a rebalance, whichever commits second) is refused, drops its
 * buffer, deletes its files and re-reads from the table's offset. Flushes that are ready together
 * share one commit, so the table gets one snapshot per round of flushes, not one per partition.
 * Buffers are bounded per partition and in total; a flush holds back consumption (backpressure).
 * See docs/decisions/0015-iceberg-lakehouse.md.
 */
export function createLakeSink(table: ResolvedTable, optionsInput: LakeSinkOptions, context: ClientContext, identity: { instance?: string } = {}): StreamJob {
  const options = lakeSinkOptionsSchema.parse(optionsInput);
  // a partition's time-based flush is due within a quarter of the interval, not up to a second late
  const tickMs = Math.min(1_000, Math.max(50, Math.round(options.flushIntervalMs / 4)));
  return createStreamJob({ name: table.group, topic: table.topic, commit: 'handler', tickMs, instance: identity.instance, maxBatchSize: LAKE_SINK_BATCH_SIZE }, context, (controls) =>
    lakeSinkHandler(table, context.catalog, options, context.lakeTables(), controls, context.config.JOB_OUTAGE_TIMEOUT_S * 1000),
  );
}

function lakeSinkHandler(
  table: ResolvedTable,
  names: Catalog,
  options: z.output<typeof lakeSinkOptionsSchema>,
  lake: TableDeps,
  controls: StreamJobControls,
  outageTimeoutMs: number,
): StreamHandler {
  const { log } = controls;
  const store = lake.store;
  const partitions = new Map<number, PartitionBuffer>();
  const columnsBySchema = new Map<number, Column[]>();
  const stats = { rowsWritten: 0, filesWritten: 0, bytesWritten: 0, flushes: 0, commits: 0, conflicts: 0, fenced: 0, superseded: 0 };
  const commitLatency = new LatencyRecorder();
  let writer: Promise<ParquetWriter> | undefined;
  /** The writer once open: rows are staged in it as they arrive. */
  let parquet: ParquetWriter | undefined;
  /** Bytes of rows buffered, and of rows handed to flushes not yet finished. */
  let bufferedBytes = 0;
  let inFlightBytes = 0;
  const settled = new Set<Promise<void>>();
  let failure: unknown;
  /** The table as last read or committed; re-read after a refused commit. */
  let state: TableState | undefined;
  /** Partitions whose flush was fenced: the loop seeks them to the table's offset before its next batch. */
  const fences = new Map<number, number>();
  /** Partitions this sink rewound to the table's offset: the offset, and the first record seen past it. */
  const rewoundTo = new Map<number, { to: number; from: number }>();
  const ready: ReadyFlush[] = [];
  let committing: Promise<void> | undefined;

  async function tableState(refresh = false): Promise<TableState> {
    if (!state || refresh) {
      state = await ensureLakeTable(lake, names, table, store.bucket);
    }
    return state;
  }

  /** The partition's buffer from the table's offset; undefined when the consumer was rewound to it (the batch is read again). */
  async function loadPartition(partition: number, firstOffset: number): Promise<PartitionBuffer | undefined> {
    const current = await tableState(true);
    const offsets = current.offsets;
    const committedNext = offsets?.next[partition];
    // Offsets of another topic of the same name (deleted and created again since) would make the
    // sink skip the new topic's records up to the old offset without a word.
    // asked at every load: a recreated topic keeps its name, and this process may have cached nothing else
    const topicId = await controls.topicId();
    if (committedNext !== undefined && offsets!.topicId && offsets!.topicId !== topicId) {
      throw topicReset(table.topic, [`partition ${partition}: the table's offsets (up to ${committedNext - 1}) belong to topic id ${offsets!.topicId}, the topic now has id ${topicId}`]);
    }
    if (committedNext !== undefined) {
      const logEnd = await controls.logEnd(partition);
      if (committedNext > logEnd) throw topicReset(table.topic, [`partition ${partition}: the table holds offsets up to ${committedNext - 1}, the log ends at ${logEnd}`]);
      // The consumer starts from Kafka's committed offset, which may be behind the table's (a crash
      // between the two commits) or, after a fenced owner committed to Kafka, ahead of it: the
      // table decides where archiving goes on.
      // The same first record after a rewind means nothing readable lies between the table's
      // offset and it: a transactional topic's commit marker (or an aborted batch) sits there.
      const rewind = rewoundTo.get(partition);
      if (firstOffset > committedNext && !(rewind?.to === committedNext && rewind.from === firstOffset)) {
        await controls.seek(partition, committedNext);
        rewoundTo.set(partition, { to: committedNext, from: firstOffset });
        // a commit marker after the table's offset looks the same at first sight, hence info
        log.info('first record past the table\'s offset; reading again from there', { partition, from: firstOffset, to: committedNext });
        return undefined;
      }
      rewoundTo.delete(partition);
    }
    const lastArchived = committedNext === undefined ? -1 : committedNext - 1;
    return {
      partition,
      topicId,
      committedNext,
      flushedThrough: lastArchived,
      lastSeen: lastArchived,
      groups: new Map(),
      rows: 0,
      bytes: 0,
      oldestAt: undefined,
      flushing: Promise.resolve(),
      fenced: false,
      covers: coversKey(current),
    };
  }

  function columnsFor(record: StreamRecord): Column[] {
    let columns = columnsBySchema.get(record.schemaId);
    if (!columns) {
      columns = columnsOf(record.type.schema() as Parameters<typeof columnsOf>[0]);
      if (!columns.some((column) => column.name === table.eventTimeField)) {
        throw new LakestreamError('USAGE', `schema ${record.schemaId} of ${table.topic} has no event time field ${table.eventTimeField}`);
      }
      if (table.kafkaPosition) columns = [...columns, ...KAFKA_POSITION_COLUMNS];
      columnsBySchema.set(record.schemaId, columns);
    }
    return columns;
  }

  /**
   * Hands the partition's buffered rows to a flush that runs in the background, after the
   * partition's previous flush: the next batches are decoded while DuckDB encodes (on its own
   * thread) and S3 uploads. A flush that fails fails the job: its rows are re-read from the
   * table's offset when it restarts.
   */
  function startFlush(buffer: PartitionBuffer): Promise<void> {
    if (buffer.lastSeen <= buffer.flushedThrough || buffer.fenced) return buffer.flushing;
    const job: Flush = { from: buffer.flushedThrough + 1, to: buffer.lastSeen, groups: [...buffer.groups.values()], rows: buffer.rows, bytes: buffer.bytes, covers: buffer.covers };
    buffer.flushedThrough = buffer.lastSeen;
    buffer.groups = new Map();
    buffer.rows = 0;
    buffer.bytes = 0;
    buffer.oldestAt = undefined;
    if (state) buffer.covers = coversKey(state);
    inFlightBytes += job.bytes;
    bufferedBytes -= job.bytes;
    // After a failed flush nothing more is written: a later flush would commit past the failed
    // range and skip its rows. The job fails and its successor re-reads from the table's offset.
    const run = buffer.flushing.then(() => (buffer.fenced || failure !== undefined ? discardGroups(job.groups) : writeFlush(buffer, job)));
    buffer.flushing = run
      .catch((error: unknown) => void (failure ??= error))
      .finally(() => {
        inFlightBytes -= job.bytes;
        settled.delete(run);
      });
    settled.add(run);
    return buffer.flushing;
  }

  /** Frees the staged rows of a buffer or flush that will not be written. */
  async function discardGroups(groups: Iterable<FileGroup>): Promise<void> {
    await Promise.all([...groups].map((group) => group.stage.discard()));
  }

  async function writeFlush(buffer: PartitionBuffer, job: Flush): Promise<void> {
    const startedAt = performance.now();
    const current = await tableState();
    const fieldIds = Object.fromEntries(current.schema.fields.map((field) => [field.name, field.id]));
    // Encoded once, before anything is written: a retried upload sends the same bytes. One
    // DuckDB statement encodes every file of a schema (a flush spanning many event hours writes
    // one file per hour).
    const parquet = await openWriter();
    const bySchema = new Map<Column[], number[]>();
    job.groups.forEach((group, index) => bySchema.set(group.columns, [...(bySchema.get(group.columns) ?? []), index]));
    const bodies: Buffer[] = [];
    for (const [columns, indexes] of bySchema) {
      // a column the table has not got yet gets its id when the commit evolves the schema
      const evolved = evolveSchema({ schema: current.schema, lastColumnId: current.loaded.metadata['last-column-id'] }, columns);
      const ids = Object.fromEntries(evolved.schema.fields.map((field) => [field.name, field.id]));
      const encoded = await parquet.writeFiles(columns, indexes.map((i) => job.groups[i]!), { ...ids, ...fieldIds });
      indexes.forEach((i, k) => (bodies[i] = encoded[k]!));
    }
    const encodeMs = performance.now() - startedAt;
    const location = current.loaded.metadata.location.replace(/\/+$/, '');
    const files: DataFile[] = job.groups.map((group, i) => ({
      path: `${location}/data/dt=${group.dt}/hour=${group.hour}/p${buffer.partition}-${group.first}-${group.last}-${randomUUID()}.parquet`,
      records: BigInt(group.stage.rows),
      sizeBytes: BigInt(bodies[i]!.length),
      partition: { dt: Math.floor(Date.parse(`${group.dt}T00:00:00Z`) / DAY_MS), hour: Number(group.hour) },
    }));
    const bytes = bodies.reduce((sum, body) => sum + body.length, 0);
    // an outage of the store is waited out (the consumer stops once the bounded buffers are full)
    const since = Date.now();
    await retry(
      async () => {
        // uploads go up to 8 at a time; a repeat overwrites the same object with the same bytes
        for (let i = 0; i < bodies.length; i += 8) {
          await Promise.all(bodies.slice(i, i + 8).map((body, k) => store.put(keyOf(store, files[i + k]!.path), body)));
        }
      },
      {
        retries: Number.POSITIVE_INFINITY,
        timeoutMs: outageTimeoutMs,
        initialDelayMs: 500,
        maxDelayMs: 15_000,
        onRetry: (error, attempt, delayMs) =>
          log.warn('lake unavailable; flush waiting', { partition: buffer.partition, step: 'upload', attempt, delayMs, waitedMs: Date.now() - since, error: errorMessage(error) }),
      },
    );
    const outcome = await new Promise<'committed' | 'fenced'>((done, failed) => {
      ready.push({ buffer, job, files, columns: [...bySchema.keys()], done, failed });
      void commitReady();
    });
    if (outcome === 'fenced') return;
    buffer.committedNext = job.to + 1;
    stats.rowsWritten += job.rows;
    stats.filesWritten += files.length;
    stats.bytesWritten += bytes;
    stats.flushes++;
    const labels = { job: controls.jobName };
    metrics.lakeFlushes.inc(labels);
    metrics.lakeFlushBytes.observe(labels, bytes);
    metrics.lakeFlushDuration.observe(labels, secondsSince(startedAt));
    metrics.recordsOut.inc({ ...labels, output: `lake:${table.id}` }, job.rows);
    log.debug('flushed', { partition: buffer.partition, from: job.from, to: job.to, rows: job.rows, files: files.length, bytes, encodeMs: Math.round(encodeMs), flushMs: Math.round(performance.now() - startedAt) });
    await controls.commit(buffer.partition, job.to + 1);
  }

  /** Commits every ready flush, one commit at a time; flushes that get ready meanwhile wait for the next. */
  function commitReady(): Promise<void> {
    committing ??= (async () => {
      try {
        while (ready.length) {
          const round = ready.splice(0);
          try {
            await commitRound(round);
          } catch (error) {
            for (const flush of round) flush.failed(error);
          }
        }
      } finally {
        committing = undefined;
      }
    })();
    return committing;
  }

  /**
   * One table commit for a round of flushes. Each flush's partition must still be at the offset
   * its flush starts from; a flush whose partition moved is fenced. A commit refused because the
   * table moved (another instance's flush, a compaction) is planned again on the new snapshot.
   */
  async function commitRound(round: ReadyFlush[]): Promise<void> {
    const since = Date.now();
    let pending = round;
    for (let attempt = 0; pending.length; attempt++) {
      let current: TableState;
      try {
        current = await tableState(attempt > 0);
      } catch (error) {
        if (!isRetriable(error) || Date.now() - since > outageTimeoutMs) throw error;
        log.warn('catalog unavailable; commit waiting', { attempt, error: errorMessage(error) });
        await sleep(Math.min(15_000, 250 * 2 ** Math.min(attempt, 6)));
        continue;
      }
      const next = { ...(current.offsets?.next ?? {}) };
      const accepted: ReadyFlush[] = [];
      for (const flush of pending) {
        const tableNext = next[flush.buffer.partition];
        if (tableNext !== flush.buffer.committedNext) await fence(flush, current, tableNext);
        else if (table.sourcePosition && flush.job.covers !== coversKey(current)) await fence(flush, current, tableNext, 'a backfill committed since its rows were checked');
        else accepted.push(flush);
      }
      if (!accepted.length) return;
      // A topic deleted and created again under its name is read on from the old positions when
      // the new one already holds records there: nothing in the records tells. Its id does, asked
      // before each commit (one metadata request per round of flushes).
      const liveTopicId = await controls.topicId();
      const stale = accepted.filter((flush) => flush.buffer.topicId !== liveTopicId);
      if (stale.length) {
        throw topicReset(table.topic, stale.map((flush) => `partition ${flush.buffer.partition}: read from offset ${flush.buffer.committedNext ?? 0} under topic id ${flush.buffer.topicId}, the topic now has id ${liveTopicId}`));
      }
      for (const flush of accepted) next[flush.buffer.partition] = flush.job.to + 1;
      const commitStarted = performance.now();
      try {
        state = await commitSnapshot(lake, current, {
          operation: 'append',
          added: accepted.flatMap((flush) => flush.files),
          columns: accepted.flatMap((flush) => flush.columns),
          offsets: { topic: table.topic, topicId: accepted[0]!.buffer.topicId, next },
          writer: `sink ${controls.jobName}`,
        });
      } catch (error) {
        if (error instanceof CommitConflict || error instanceof CommitStateUnknown || isRetriable(error)) {
          stats.conflicts++;
          if (Date.now() - since > outageTimeoutMs) throw error;
          log.debug('commit refused; planning again on the new snapshot', { attempt, error: errorMessage(error) });
          await sleep(Math.min(2_000, 20 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
          pending = accepted;
          continue;
        }
        throw error;
      }
      stats.commits++;
      commitLatency.record(performance.now() - commitStarted);
      metrics.lakeCommitDuration.observe({ job: controls.jobName }, secondsSince(commitStarted));
      for (const flush of accepted) flush.done('committed');
      return;
    }
  }

  /**
   * The table holds something else for this partition than the flush assumed. If it is the
   * flush's own range with the flush's own files (an earlier attempt of this commit landed
   * though its answer was lost), the flush is done. Otherwise another owner archived the
   * partition: drop this buffer, and re-read from the table's offset. The flush's files are
   * deleted only if the table does not hold them: an attempt that landed unseen, with another
   * owner's commit on top since (the catalog keeps only the current snapshot, so the attempt
   * cannot be found by its id), made them the table's.
   */
  async function fence(flush: ReadyFlush, current: TableState, tableNext: number | undefined, reason = 'the table moved this partition past the flush'): Promise<void> {
    const { buffer, job } = flush;
    const live = new Set((await liveFiles(lake, current)).map((entry) => entry.file.path));
    const landed = flush.files.filter((file) => live.has(file.path));
    if (tableNext === job.to + 1 && landed.length === flush.files.length) {
      flush.done('committed');
      return;
    }
    stats.fenced++;
    log.warn(`fenced: ${reason}; dropping the buffer and re-reading from the table`, {
      partition: buffer.partition,
      flushFrom: job.from,
      expected: buffer.committedNext ?? null,
      tableNext: tableNext ?? null,
      landedUnseen: landed.length > 0,
    });
    buffer.fenced = true;
    void discardGroups(buffer.groups.values()).catch(() => {});
    buffer.groups = new Map();
    const unreferenced = flush.files.filter((file) => !live.has(file.path));
    await store.delete(unreferenced.map((file) => keyOf(store, file.path))).catch((error) => log.warn('could not delete the files of a fenced flush (orphan removal will)', { error: errorMessage(error) }));
    if (partitions.get(buffer.partition) === buffer) {
      partitions.delete(buffer.partition);
      bufferedBytes -= buffer.bytes;
      if (tableNext !== undefined) fences.set(buffer.partition, tableNext);
    }
    flush.done('fenced');
  }

  /**
   * Whether a backfill of the row's day already counted the input the row was computed from
   * (its position is below what the backfill's archive held): the backfill's row stands for it.
   */
  function superseded(record: StreamRecord, eventTime: number): boolean {
    const covers = state?.covers;
    const position = table.sourcePosition!;
    const partition = record.value[position.partition];
    const offset = record.value[position.offset];
    if (!covers || typeof partition !== 'number' || typeof offset !== 'number') return false;
    const covered = covers[new Date(Math.floor(eventTime / DAY_MS) * DAY_MS).toISOString().slice(0, 10)]?.[partition];
    return covered !== undefined && offset < covered;
  }

  function add(buffer: PartitionBuffer, record: StreamRecord): void {
    const eventTime = record.value[table.eventTimeField];
    if (typeof eventTime !== 'number' || !Number.isFinite(eventTime)) {
      // Caught by the catalog's rules for declared topics; a schema change could still get here.
      throw new LakestreamError('RECORD_INVALID', `${table.eventTimeField}: not an epoch-millisecond time at ${record.topic}/${record.partition}@${record.offset}`);
    }
    if (table.sourcePosition) {
      const checkedWith = coversKey(state!);
      if (buffer.covers !== checkedWith) buffer.covers = buffer.rows === 0 && buffer.flushedThrough === buffer.lastSeen ? checkedWith : undefined;
      if (superseded(record, eventTime)) {
        stats.superseded++;
        return;
      }
    }
    // Grouped by hour number, not by formatted date: one toISOString per new group, not per row.
    const groupKey = `${Math.floor(eventTime / HOUR_MS)}|${record.schemaId}`;
    let group = buffer.groups.get(groupKey);
    if (!group) {
      const columns = columnsFor(record);
      group = { ...eventTimePartition(eventTime), columns, stage: parquet!.stage(columns), first: record.offset, last: record.offset };
      buffer.groups.set(groupKey, group);
    }
    const { columns, stage } = group;
    const values = stage.values;
    const fields = table.kafkaPosition ? columns.length - KAFKA_POSITION_COLUMNS.length : columns.length;
    for (let i = 0; i < fields; i++) values[i]!.push(record.value[columns[i]!.name] ?? null);
    if (fields < columns.length) {
      values[fields]!.push(record.partition);
      values[fields + 1]!.push(record.offset);
    }
    stage.added();
    group.last = record.offset;
    buffer.rows++;
    // measured when rows were held in JS: a transactions row (27 Avro bytes) cost ~110 bytes; staged
    // in DuckDB it costs less, so the bound over buffers stays on the safe side
    const weight = 64 + 2 * record.bytes;
    buffer.bytes += weight;
    bufferedBytes += weight;
  }

  /**
   * Seeks fenced partitions back to the table's offset. Runs between polls (before a batch, on
   * a tick), so the next poll returns only records from there on (librdkafka drops what it
   * fetched before a seek); returns the partitions whose records in the batch at hand are stale.
   */
  async function applyFences(): Promise<Set<number>> {
    const rewound = new Set<number>();
    for (const [partition, offset] of fences) {
      fences.delete(partition);
      await controls.seek(partition, offset);
      rewound.add(partition);
    }
    return rewound;
  }

  async function openWriter(): Promise<ParquetWriter> {
    writer ??= ParquetWriter.open();
    return (parquet = await writer);
  }

  async function handleBatch(batch: PartitionBatch): Promise<void> {
    if (!parquet) await openWriter();
    let buffer = partitions.get(batch.partition);
    if (!buffer) {
      const first = batch.records[0]?.offset ?? batch.lastOffset;
      buffer = await loadPartition(batch.partition, first);
      if (!buffer) return;
      partitions.set(batch.partition, buffer);
    }
    if (batch.lastOffset <= buffer.lastSeen) return;
    for (const record of batch.records) {
      if (record.offset <= buffer.lastSeen) continue;
      add(buffer, record);
      if (buffer.rows >= options.flushRows || buffer.bytes >= options.flushBytes) {
        buffer.lastSeen = record.offset;
        void startFlush(buffer);
      }
    }
    buffer.lastSeen = batch.lastOffset;
    buffer.oldestAt ??= Date.now();
  }

  /** Rethrows a background flush's failure into the runtime, which then fails the job. */
  function raiseFailure(): void {
    if (failure) throw new LakestreamError('S3_ERROR', `a flush to the lake failed: ${errorMessage(failure)}`, { cause: failure });
  }

  /** Per writer schema: whether the table can hold its rows (after evolving, if it must). */
  const fits = new Map<number, string | undefined>();
  /** Whether the table can hold a writer schema's rows, evolving it if it must; asked once per schema id. */
  async function checkFit(record: StreamRecord): Promise<void> {
    const current = await tableState();
    try {
      evolveSchema({ schema: current.schema, lastColumnId: current.loaded.metadata['last-column-id'] }, columnsFor(record));
      fits.set(record.schemaId, undefined);
    } catch (error) {
      if (!(error instanceof LakestreamError) || (error.code !== 'SCHEMA_INCOMPATIBLE' && error.code !== 'USAGE')) throw error;
      fits.set(record.schemaId, errorMessage(error));
    }
  }

  /** Synchronous once the writer schema has been checked: the runtime awaits only a promise. */
  function accept(record: StreamRecord): Promise<void> | void {
    if (!fits.has(record.schemaId)) return checkFit(record).then(() => accept(record));
    const reason = fits.get(record.schemaId);
    if (reason !== undefined) {
      throw new LakestreamError('RECORD_INVALID', `schema ${record.schemaId} does not fit table ${table.iceberg.name}: ${reason} (${record.topic}/${record.partition}@${record.offset})`, {
        context: { reason: 'schema_incompatible', topic: record.topic, partition: record.partition, offset: record.offset },
      });
    }
  }

  return {
    accept,
    async handle(batches) {
      raiseFailure();
      const rewound = await applyFences();
      for (const batch of batches) if (!rewound.has(batch.partition)) await handleBatch(batch);
      // Memory is bounded over buffers and flushes in flight: flush the largest buffer, then wait
      // for flushes to finish (backpressure when S3 or encoding is slower than consumption).
      while (bufferedBytes + inFlightBytes > options.maxBufferedBytes) {
        const largest = [...partitions.values()].sort((a, b) => b.bytes - a.bytes)[0];
        if (largest && largest.bytes > 0 && bufferedBytes > inFlightBytes) void startFlush(largest);
        else if (settled.size) await Promise.race(settled).catch(() => {});
        else break;
        raiseFailure();
      }
    },
    async revoked(revoked) {
      for (const partition of revoked) {
        const buffer = partitions.get(partition);
        if (!buffer) continue;
        partitions.delete(partition);
        // Hand over cleanly; if this fails the next owner re-reads from the lake's offset.
        await startFlush(buffer);
        bufferedBytes -= buffer.bytes;
      }
      raiseFailure();
    },
    async tick() {
      raiseFailure();
      await applyFences();
      const now = Date.now();
      for (const buffer of partitions.values()) {
        if (buffer.oldestAt !== undefined && now - buffer.oldestAt >= options.flushIntervalMs) void startFlush(buffer);
      }
    },
    async close() {
      try {
        await Promise.all([...partitions.values()].map((buffer) => startFlush(buffer)));
        raiseFailure();
      } finally {
        if (writer) (await writer).close();
      }
    },
    stats: () => {
      const commit = commitLatency.summary();
      return { ...stats, commitP50Ms: Math.round(commit.p50), commitP99Ms: Math.round(commit.p99), buffered: [...partitions.values()].reduce((sum, buffer) => sum + buffer.rows, 0) } satisfies LakeSinkStats;
    },
  };
}
