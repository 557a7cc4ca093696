import { z } from 'zod';
import type { ResolvedTable } from '../../core/catalog.ts';
import type { ClientContext } from '../../core/context.ts';
import { LakestreamError, errorMessage, isRetriable } from '../../core/errors.ts';
import { columnsOf, eventTimePartition, parseSinkPartitionState, sinkFileKey, sinkStateKey, type SinkPartitionState } from '../../core/lake-layout.ts';
import { PreconditionFailed, type ObjectStore } from '../../core/object-store.ts';
import { metrics, secondsSince } from '../../core/metrics.ts';
import { retry } from '../../core/retry.ts';
import { createStreamJob, topicReset, type PartitionBatch, type StreamHandler, type StreamJob, type StreamJobControls, type StreamRecord } from '../../core/stream-job.ts';
import { ParquetWriter, type Column } from './parquet.ts';

export const lakeSinkOptionsSchema = z
  .object({
    flushRows: z.number().int().positive().default(100_000).describe('Flush a partition when it buffers this many rows.'),
    flushBytes: z.number().int().positive().default(32 * 1024 * 1024).describe('Flush a partition when its buffer reaches this many bytes.'),
    flushIntervalMs: z.number().int().positive().default(30_000).describe('Flush a partition whose oldest buffered record is this old.'),
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
}

/** The rows of one output file: one event hour of one partition, written with one schema, held column by column. */
interface FileGroup {
  dt: string;
  hour: string;
  columns: Column[];
  /** One array per column: numbers stay unboxed, and no object per row outlives its batch. */
  values: unknown[][];
  rows: number;
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
}

interface PartitionBuffer {
  partition: number;
  /** The id of the topic the partition's offsets belong to, read when the partition was loaded. */
  topicId: string;
  /** Last offset durably in the lake; -1 when nothing is. */
  committedThrough: number;
  /** Last offset handed to a flush (committed or in flight). */
  flushedThrough: number;
  etag: string | undefined;
  /** Highest offset handled: buffered, or dead-lettered. */
  lastSeen: number;
  groups: Map<string, FileGroup>;
  rows: number;
  bytes: number;
  oldestAt: number | undefined;
  /** The partition's flushes run one after another, each after the previous one committed. */
  flushing: Promise<void>;
  /** Set when another owner moved the partition state: this buffer must not write again. */
  fenced: boolean;
}

const HOUR_MS = 3_600_000;

/**
 * Archives a topic to Parquet in the lake, exactly once: a lake table of the catalog, written by
 * its sink job on the stream-job runtime.
 *
 * Files are named from what they hold (`p<partition>-<first>-<last>.parquet` under the record's
 * event-time `dt=/hour=` folder), never from clocks or randomness. The lake's partition state
 * object, not the Kafka offset, is the truth of what is archived: offsets are committed to Kafka
 * only after it, and records at or below the lake's offset are skipped. So flush boundaries
 * (rows, bytes or time) may differ between runs without ever duplicating or losing a row.
 * Every state write is a compare-and-set on the previous ETag, so a fenced-off (zombie) owner
 * cannot commit. Buffers are bounded per partition and in total; a flush holds back consumption
 * (backpressure) instead of letting memory grow when S3 is slow.
 */
export function createLakeSink(table: ResolvedTable, optionsInput: LakeSinkOptions, context: ClientContext): StreamJob {
  const options = lakeSinkOptionsSchema.parse(optionsInput);
  // a partition's time-based flush is due within a quarter of the interval, not up to a second late
  const tickMs = Math.min(1_000, Math.max(50, Math.round(options.flushIntervalMs / 4)));
  return createStreamJob({ name: table.group, topic: table.topic, commit: 'handler', tickMs }, context, (controls) =>
    lakeSinkHandler(table, options, context.objectStore(), controls, context.config.JOB_OUTAGE_TIMEOUT_S * 1000),
  );
}

function lakeSinkHandler(
  table: ResolvedTable,
  options: z.output<typeof lakeSinkOptionsSchema>,
  store: ObjectStore,
  controls: StreamJobControls,
  outageTimeoutMs: number,
): StreamHandler {
  const { log } = controls;
  const partitions = new Map<number, PartitionBuffer>();
  const columnsBySchema = new Map<number, Column[]>();
  const stats = { rowsWritten: 0, filesWritten: 0, bytesWritten: 0, flushes: 0 };
  let writer: Promise<ParquetWriter> | undefined;
  /** Bytes of rows buffered, and of rows handed to flushes not yet finished. */
  let bufferedBytes = 0;
  let inFlightBytes = 0;
  const settled = new Set<Promise<void>>();
  let failure: unknown;

  async function loadPartition(partition: number): Promise<PartitionBuffer> {
    const key = sinkStateKey(table.sinkStateRoot, partition);
    const found = await store.getJson<unknown>(key);
    const state = found ? parseSinkPartitionState(found.value, key) : undefined;
    let etag = found?.etag;
    const committedThrough = state?.committedThrough ?? -1;
    // Offsets of another topic of the same name (deleted and created again since) would make the
    // sink skip the new topic's records up to the old offset without a word.
    // asked at every load: a recreated topic keeps its name, and this process may have cached nothing else
    const topicId = await controls.topicId();
    if (state?.topicId && state.topicId !== topicId) {
      throw topicReset(table.topic, [`partition ${partition}: the lake's offsets (up to ${committedThrough}) belong to topic id ${state.topicId}, the topic now has id ${topicId}`]);
    }
    if (committedThrough >= 0) {
      const logEnd = await controls.logEnd(partition);
      if (committedThrough >= logEnd) throw topicReset(table.topic, [`partition ${partition}: the lake holds offsets up to ${committedThrough}, the log ends at ${logEnd}`]);
    }
    if (state?.pending) {
      // A flush died between its intent and its commit: remove whatever of it reached the lake.
      await store.delete(state.pending.files);
      etag = await store.putJson(key, { committedThrough, topicId } satisfies SinkPartitionState, { ifMatch: etag });
      log.warn('recovered an interrupted flush', { partition, from: state.pending.from, to: state.pending.to, files: state.pending.files.length });
    }
    return {
      partition,
      topicId,
      committedThrough,
      flushedThrough: committedThrough,
      etag,
      lastSeen: committedThrough,
      groups: new Map(),
      rows: 0,
      bytes: 0,
      oldestAt: undefined,
      flushing: Promise.resolve(),
      fenced: false,
    };
  }

  function columnsFor(record: StreamRecord): Column[] {
    let columns = columnsBySchema.get(record.schemaId);
    if (!columns) {
      columns = columnsOf(record.type.schema() as Parameters<typeof columnsOf>[0]);
      if (!columns.some((column) => column.name === table.eventTimeField)) {
        throw new LakestreamError('USAGE', `schema ${record.schemaId} of ${table.topic} has no event time field ${table.eventTimeField}`);
      }
      columnsBySchema.set(record.schemaId, columns);
    }
    return columns;
  }

  /**
   * Hands the partition's buffered rows to a flush that runs in the background, after the
   * partition's previous flush: the next batches are decoded while DuckDB encodes (on its own
   * thread) and S3 uploads. Each flush writes its intent, uploads, writes the new partition
   * state, then commits the Kafka offset. A flush that fails fails the job: its rows are re-read
   * from the lake's offset when it restarts.
   */
  function startFlush(buffer: PartitionBuffer): Promise<void> {
    if (buffer.lastSeen <= buffer.flushedThrough || buffer.fenced) return buffer.flushing;
    const job: Flush = { from: buffer.flushedThrough + 1, to: buffer.lastSeen, groups: [...buffer.groups.values()], rows: buffer.rows, bytes: buffer.bytes };
    buffer.flushedThrough = buffer.lastSeen;
    buffer.groups = new Map();
    buffer.rows = 0;
    buffer.bytes = 0;
    buffer.oldestAt = undefined;
    inFlightBytes += job.bytes;
    bufferedBytes -= job.bytes;
    // After a failed flush nothing more is written: a later flush would commit past the failed
    // range and skip its rows. The job fails and its successor re-reads from the lake's offset.
    const run = buffer.flushing.then(() => (buffer.fenced || failure !== undefined ? undefined : writeFlush(buffer, job)));
    buffer.flushing = run
      .catch((error: unknown) => void (failure ??= error))
      .finally(() => {
        inFlightBytes -= job.bytes;
        settled.delete(run);
      });
    settled.add(run);
    return buffer.flushing;
  }

  /**
   * After a conditional write of the partition state failed, was it our own write that landed
   * (the store took it, the answer was lost)? Then its ETag is ours and the flush goes on.
   */
  async function ownWriteLanded(buffer: PartitionBuffer, key: string, written: SinkPartitionState): Promise<boolean> {
    const current = await store.getJson<SinkPartitionState>(key);
    if (!current || JSON.stringify(current.value) !== JSON.stringify(written)) return false;
    buffer.etag = current.etag;
    return true;
  }

  async function writeFlush(buffer: PartitionBuffer, job: Flush): Promise<void> {
    const key = sinkStateKey(table.sinkStateRoot, buffer.partition);
    const files = job.groups.map((group) => sinkFileKey(table.path, group.dt, group.hour, { partition: buffer.partition, first: group.first, last: group.last }));
    const startedAt = performance.now();
    // Encoded once, before anything is written: a retried flush uploads the same bytes. One
    // DuckDB statement encodes every file of a schema (a flush spanning many event hours writes
    // one file per hour).
    writer ??= ParquetWriter.open();
    const parquet = await writer;
    const bySchema = new Map<Column[], number[]>();
    job.groups.forEach((group, index) => bySchema.set(group.columns, [...(bySchema.get(group.columns) ?? []), index]));
    const bodies: Buffer[] = [];
    for (const [columns, indexes] of bySchema) {
      const encoded = await parquet.writeFiles(columns, indexes.map((i) => job.groups[i]!));
      indexes.forEach((i, k) => (bodies[i] = encoded[k]!));
    }
    const encodeMs = performance.now() - startedAt;
    for (const group of job.groups) group.values = [];
    const bytes = bodies.reduce((sum, body) => sum + body.length, 0);
    const intent: SinkPartitionState = { committedThrough: buffer.committedThrough, topicId: buffer.topicId, pending: { from: job.from, to: job.to, files } };
    const committed: SinkPartitionState = { committedThrough: job.to, topicId: buffer.topicId };
    // intent, uploads, commit; an outage of the store is waited out step by step (the consumer
    // stops once the bounded buffers are full) instead of failing the job
    let step: 'intent' | 'upload' | 'commit' = 'intent';
    const since = Date.now();
    try {
      await retry(
        async () => {
          if (step === 'intent') {
            try {
              buffer.etag = await store.putJson(key, intent, buffer.etag ? { ifMatch: buffer.etag } : { ifNoneMatch: '*' });
            } catch (error) {
              if (!(error instanceof PreconditionFailed && (await ownWriteLanded(buffer, key, intent)))) throw error;
            }
            step = 'upload';
          }
          if (step === 'upload') {
            // uploads go up to 8 at a time; names come from content, so a repeat overwrites the same bytes
            for (let i = 0; i < bodies.length; i += 8) {
              await Promise.all(bodies.slice(i, i + 8).map((body, k) => store.put(files[i + k]!, body)));
            }
            step = 'commit';
          }
          try {
            buffer.etag = await store.putJson(key, committed, { ifMatch: buffer.etag });
          } catch (error) {
            if (!(error instanceof PreconditionFailed && (await ownWriteLanded(buffer, key, committed)))) throw error;
          }
        },
        {
          retries: Number.POSITIVE_INFINITY,
          timeoutMs: outageTimeoutMs,
          initialDelayMs: 500,
          maxDelayMs: 15_000,
          shouldRetry: (error) => !(error instanceof PreconditionFailed) && isRetriable(error),
          onRetry: (error, attempt, delayMs) =>
            log.warn('lake unavailable; flush waiting', { partition: buffer.partition, step, attempt, delayMs, waitedMs: Date.now() - since, error: errorMessage(error) }),
        },
      );
    } catch (error) {
      if (!(error instanceof PreconditionFailed)) throw error;
      // Another owner moved the state: trust the lake, drop our copy.
      log.warn('fenced: partition state changed under us; dropping its buffer', { partition: buffer.partition });
      buffer.fenced = true;
      if (partitions.get(buffer.partition) === buffer) partitions.delete(buffer.partition);
      bufferedBytes -= buffer.bytes;
      return;
    }
    buffer.committedThrough = job.to;
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

  function add(buffer: PartitionBuffer, record: StreamRecord): void {
    const eventTime = record.value[table.eventTimeField];
    if (typeof eventTime !== 'number' || !Number.isFinite(eventTime)) {
      // Caught by the catalog's rules for declared topics; a schema change could still get here.
      throw new LakestreamError('RECORD_INVALID', `${table.eventTimeField}: not an epoch-millisecond time at ${record.topic}/${record.partition}@${record.offset}`);
    }
    // Grouped by hour number, not by formatted date: one toISOString per new group, not per row.
    const groupKey = `${Math.floor(eventTime / HOUR_MS)}|${record.schemaId}`;
    let group = buffer.groups.get(groupKey);
    if (!group) {
      const columns = columnsFor(record);
      group = { ...eventTimePartition(eventTime), columns, values: columns.map(() => []), rows: 0, first: record.offset, last: record.offset };
      buffer.groups.set(groupKey, group);
    }
    const { columns, values } = group;
    for (let i = 0; i < columns.length; i++) values[i]!.push(record.value[columns[i]!.name] ?? null);
    group.rows++;
    group.last = record.offset;
    buffer.rows++;
    // measured: a transactions row (27 Avro bytes) costs ~110 bytes of column arrays and strings
    const weight = 64 + 2 * record.bytes;
    buffer.bytes += weight;
    bufferedBytes += weight;
  }

  async function handleBatch(batch: PartitionBatch): Promise<void> {
    let buffer = partitions.get(batch.partition);
    if (!buffer) {
      buffer = await loadPartition(batch.partition);
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

  return {
    async handle(batches) {
      raiseFailure();
      for (const batch of batches) await handleBatch(batch);
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
    stats: () => ({ ...stats, buffered: [...partitions.values()].reduce((sum, buffer) => sum + buffer.rows, 0) }) satisfies LakeSinkStats,
  };
}
