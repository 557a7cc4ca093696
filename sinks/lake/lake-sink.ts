import type { KafkaJS } from '@confluentinc/kafka-javascript';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { z } from 'zod';
import { createAvroDecoder } from '../../core/avro.ts';
import type { Config } from '../../core/config.ts';
import { createDeadLetters, type DeadLetters } from '../../core/dead-letter.ts';
import { LakestreamError, errorMessage } from '../../core/errors.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { createLogger, type Logger } from '../../core/log.ts';
import { createObjectStore, PreconditionFailed, type ObjectStore } from '../../core/object-store.ts';
import { createRegistry } from '../../core/registry.ts';
import { createS3 } from '../../core/s3.ts';
import { columnsOf, ParquetWriter, type Column } from './parquet.ts';

export const lakeSinkOptionsSchema = z
  .object({
    name: z.string().min(1).describe('Consumer group of the sink, and the name its lake state is kept under.'),
    topic: z.string().min(1).describe('Topic to archive.'),
    table: z
      .string()
      .regex(/^[a-z0-9_][a-z0-9_/-]*[a-z0-9_]$/, 'lower-case path segments')
      .describe('Key prefix of the table in the lake bucket, e.g. transactions or features/user_transaction_counts.'),
    eventTimeField: z.string().min(1).describe('Field (epoch milliseconds) whose UTC date and hour partition the table.'),
    flushRows: z.number().int().positive().default(100_000).describe('Flush a partition when it buffers this many rows.'),
    flushBytes: z.number().int().positive().default(32 * 1024 * 1024).describe('Flush a partition when its buffer reaches this many bytes.'),
    flushIntervalMs: z.number().int().positive().default(30_000).describe('Flush a partition whose oldest buffered record is this old.'),
    maxBufferedBytes: z.number().int().positive().default(128 * 1024 * 1024).describe('Bound over all partitions: the largest buffer is flushed first.'),
    stateRoot: z.string().default('_lakestream/sinks').describe('Key prefix of the per-partition sink state objects.'),
  })
  .strict();

export type LakeSinkOptions = z.input<typeof lakeSinkOptionsSchema>;

export interface LakeSinkDeps {
  config: Config;
  /** Business rules: throw a RECORD_INVALID LakestreamError to send the record to the DLQ. */
  validate?: (record: Record<string, unknown>) => void;
  registry?: SchemaRegistry;
  log?: Logger;
}

export interface LakeSinkStats {
  rowsWritten: number;
  /** Rows decoded and waiting for their partition's next flush. */
  buffered?: number;
  filesWritten: number;
  bytesWritten: number;
  flushes: number;
  deadLetters: Record<string, number>;
}

export interface LakeSink {
  start(): Promise<void>;
  /** Flushes every buffer, commits, and leaves the group. Idempotent. */
  stop(): Promise<void>;
  stats(): LakeSinkStats;
}

/**
 * What the lake holds of one Kafka partition, kept in `<stateRoot>/<name>/partition=<p>.json`.
 * `pending` is an intent written before a flush uploads its files; a crash mid-flush leaves it,
 * and the next owner deletes exactly those files and re-reads the range. Every write is a
 * compare-and-set on the previous ETag, so a fenced-off (zombie) owner cannot commit.
 */
interface PartitionStateObject {
  committedThrough: number;
  pending?: { from: number; to: number; files: string[] };
}

interface FileGroup {
  dt: string;
  hour: string;
  schemaId: number;
  columns: Column[];
  rows: Array<Record<string, unknown>>;
  first: number;
  last: number;
}

interface PartitionBuffer {
  partition: number;
  /** Last offset durably in the lake; -1 when nothing is. */
  committedThrough: number;
  etag: string | undefined;
  /** Highest offset handled: buffered, or dead-lettered. */
  lastSeen: number;
  groups: Map<string, FileGroup>;
  rows: number;
  bytes: number;
  oldestAt: number | undefined;
}

const REVOKE = -174;

/**
 * Archives a topic to Parquet in the lake, exactly once.
 *
 * Files are named from what they hold (`p<partition>-<first offset>-<last offset>.parquet` under
 * the record's event-time `dt=/hour=` folder), never from clocks or randomness. The lake state
 * object, not the Kafka offset, is the truth of what is archived: offsets are committed to Kafka
 * only after it, and on assignment records at or below the lake's offset are skipped. So flush
 * boundaries (rows, bytes or time) may differ between runs without ever duplicating or losing a
 * row. Buffers are bounded per partition and in total; an awaited flush holds back consumption
 * (backpressure) instead of letting memory grow when S3 is slow.
 */
export function createLakeSink(optionsInput: LakeSinkOptions, deps: LakeSinkDeps): LakeSink {
  const options = lakeSinkOptionsSchema.parse(optionsInput);
  const log = deps.log ?? createLogger('lake-sink', { sink: options.name, topic: options.topic });
  const registry = deps.registry ?? createRegistry(deps.config);
  const decode = createAvroDecoder(registry);
  const s3 = createS3(deps.config);
  const store: ObjectStore = createObjectStore(s3, deps.config.LAKE_BUCKET);
  const partitions = new Map<number, PartitionBuffer>();
  const columnsBySchema = new Map<number, Column[]>();
  const stats: LakeSinkStats = { rowsWritten: 0, filesWritten: 0, bytesWritten: 0, flushes: 0, deadLetters: {} };
  let writer: ParquetWriter | undefined;
  let consumer: KafkaJS.Consumer | undefined;
  let dlqProducer: KafkaJS.Producer | undefined;
  let deadLetters: DeadLetters | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped: Promise<void> | undefined;

  // One lock serialises batches, timed flushes and rebalances: a partition's buffer is never
  // flushed while a batch is being added to it.
  let tail: Promise<unknown> = Promise.resolve();
  const locked = <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task);
    tail = run.catch(() => {});
    return run;
  };

  const stateKey = (partition: number) => `${options.stateRoot}/${options.name}/partition=${partition}.json`;
  const fileKey = (group: FileGroup, partition: number) =>
    `${options.table}/dt=${group.dt}/hour=${group.hour}/p${partition}-${group.first}-${group.last}.parquet`;

  async function loadPartition(partition: number): Promise<PartitionBuffer> {
    const key = stateKey(partition);
    const found = await store.getJson<PartitionStateObject>(key);
    let committedThrough = found?.value.committedThrough ?? -1;
    let etag = found?.etag;
    if (found?.value.pending) {
      const { pending } = found.value;
      // A flush died between its intent and its commit: remove whatever of it reached the lake.
      await store.delete(pending.files);
      etag = await store.putJson(key, { committedThrough } satisfies PartitionStateObject, { ifMatch: etag });
      log.warn('recovered an interrupted flush', { partition, from: pending.from, to: pending.to, files: pending.files.length });
    }
    committedThrough = Math.max(committedThrough, -1);
    return { partition, committedThrough, etag, lastSeen: committedThrough, groups: new Map(), rows: 0, bytes: 0, oldestAt: undefined };
  }

  async function columnsFor(schemaId: number, type: { schema(): unknown }): Promise<Column[]> {
    let columns = columnsBySchema.get(schemaId);
    if (!columns) {
      columns = columnsOf(type.schema() as Parameters<typeof columnsOf>[0]);
      if (!columns.some((column) => column.name === options.eventTimeField)) {
        throw new LakestreamError('USAGE', `schema ${schemaId} of ${options.topic} has no event time field ${options.eventTimeField}`);
      }
      columnsBySchema.set(schemaId, columns);
    }
    return columns;
  }

  function totalBytes(): number {
    let sum = 0;
    for (const buffer of partitions.values()) sum += buffer.bytes;
    return sum;
  }

  async function flush(buffer: PartitionBuffer, commitToKafka = true): Promise<void> {
    if (buffer.lastSeen <= buffer.committedThrough) return;
    const key = stateKey(buffer.partition);
    const from = buffer.committedThrough + 1;
    const to = buffer.lastSeen;
    const groups = [...buffer.groups.values()];
    const files = groups.map((group) => fileKey(group, buffer.partition));
    try {
      const intent: PartitionStateObject = { committedThrough: buffer.committedThrough, pending: { from, to, files } };
      buffer.etag = await store.putJson(key, intent, buffer.etag ? { ifMatch: buffer.etag } : { ifNoneMatch: '*' });
      let bytes = 0;
      // Encoding is serial (one DuckDB connection); uploads of a flush go up to 8 at a time, since
      // a flush spanning many event hours writes one file per hour.
      const uploads = new Set<Promise<void>>();
      let uploadFailure: unknown;
      for (const [index, group] of groups.entries()) {
        const body = await writer!.write(group.columns, group.rows);
        bytes += body.length;
        const upload: Promise<void> = store
          .put(files[index]!, body)
          .catch((error: unknown) => void (uploadFailure ??= error))
          .finally(() => uploads.delete(upload));
        uploads.add(upload);
        if (uploads.size >= 8) await Promise.race(uploads);
        if (uploadFailure) break;
      }
      await Promise.all(uploads);
      if (uploadFailure) throw uploadFailure;
      buffer.etag = await store.putJson(key, { committedThrough: to } satisfies PartitionStateObject, { ifMatch: buffer.etag });
      buffer.committedThrough = to;
      stats.rowsWritten += buffer.rows;
      stats.filesWritten += files.length;
      stats.bytesWritten += bytes;
      stats.flushes++;
      log.info('flushed', { partition: buffer.partition, from, to, rows: buffer.rows, files: files.length, bytes, rowsWritten: stats.rowsWritten });
      buffer.groups = new Map();
      buffer.rows = 0;
      buffer.bytes = 0;
      buffer.oldestAt = undefined;
    } catch (error) {
      if (!(error instanceof PreconditionFailed)) throw error;
      // Another owner (or our own retried write) moved the state: trust the lake, drop our copy.
      log.warn('fenced: partition state changed under us; reloading', { partition: buffer.partition });
      partitions.delete(buffer.partition);
      return;
    }
    if (commitToKafka) {
      await consumer!.commitOffsets([{ topic: options.topic, partition: buffer.partition, offset: String(to + 1) }]);
    }
  }

  async function handleBatch(batch: KafkaJS.Batch): Promise<void> {
    let buffer = partitions.get(batch.partition);
    if (!buffer) {
      buffer = await loadPartition(batch.partition);
      partitions.set(batch.partition, buffer);
    }
    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (offset <= buffer.lastSeen) continue;
      try {
        const pending = decode(message.value);
        const decoded = pending instanceof Promise ? await pending : pending;
        deps.validate?.(decoded.value);
        const eventTime = decoded.value[options.eventTimeField];
        if (typeof eventTime !== 'number' || !Number.isFinite(eventTime)) {
          throw new LakestreamError('RECORD_INVALID', `${options.eventTimeField}: not an epoch-millisecond time`, { context: { reason: 'invalid' } });
        }
        const iso = new Date(eventTime).toISOString();
        const dt = iso.slice(0, 10);
        const hour = iso.slice(11, 13);
        const groupKey = `${dt}|${hour}|${decoded.schemaId}`;
        let group = buffer.groups.get(groupKey);
        if (!group) {
          group = { dt, hour, schemaId: decoded.schemaId, columns: await columnsFor(decoded.schemaId, decoded.type), rows: [], first: offset, last: offset };
          buffer.groups.set(groupKey, group);
        }
        group.rows.push(decoded.value);
        group.last = offset;
        buffer.rows++;
        // decoded objects weigh several times their Avro bytes
        buffer.bytes += 64 + 4 * (message.value?.length ?? 0);
      } catch (error) {
        if (!(error instanceof LakestreamError) || !['RECORD_UNDECODABLE', 'RECORD_INVALID'].includes(error.code) || error.retriable) throw error;
        await deadLetters!.send(dlqProducer!, { topic: batch.topic, partition: batch.partition, message }, error);
      }
      buffer.lastSeen = offset;
      buffer.oldestAt ??= Date.now();
      if (buffer.rows >= options.flushRows || buffer.bytes >= options.flushBytes) await flush(buffer);
      if (!partitions.has(batch.partition)) return;
    }
    while (totalBytes() > options.maxBufferedBytes) {
      const largest = [...partitions.values()].sort((a, b) => b.bytes - a.bytes)[0]!;
      await flush(largest);
    }
  }

  async function flushDue(): Promise<void> {
    const now = Date.now();
    for (const buffer of [...partitions.values()]) {
      if (buffer.oldestAt !== undefined && now - buffer.oldestAt >= options.flushIntervalMs) await flush(buffer);
    }
  }

  return {
    async start() {
      writer = await ParquetWriter.open();
      dlqProducer = createProducer(deps.config, `${options.name}-dlq`);
      await dlqProducer.connect();
      deadLetters = createDeadLetters(options.name, log);
      consumer = createConsumer(deps.config, options.name, {
        rebalance: async (event, assignment) => {
          if (event.code !== REVOKE) return;
          await locked(async () => {
            for (const { partition } of assignment) {
              const buffer = partitions.get(partition);
              if (!buffer) continue;
              // Hand over cleanly; if this fails the next owner re-reads from the lake's offset.
              await flush(buffer, false).catch((cause) => log.warn('flush on revoke failed', { partition, error: errorMessage(cause) }));
              partitions.delete(partition);
            }
          });
        },
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [options.topic] });
      await consumer.run({ eachBatch: ({ batch }) => locked(() => handleBatch(batch)) });
      timer = setInterval(() => {
        locked(flushDue).catch((error) => log.error('timed flush failed', { error: errorMessage(error) }));
      }, Math.min(1_000, options.flushIntervalMs));
      log.info('started', { table: options.table, stateRoot: options.stateRoot });
    },

    stop() {
      stopped ??= (async () => {
        if (timer) clearInterval(timer);
        if (consumer) {
          await locked(async () => {
            for (const buffer of [...partitions.values()]) await flush(buffer);
          });
          await consumer.disconnect();
        }
        await dlqProducer?.disconnect();
        writer?.close();
        s3.destroy();
        log.info('stopped', { ...stats, deadLetters: deadLetters?.counts() });
      })();
      return stopped;
    },

    stats: () => ({ ...stats, buffered: [...partitions.values()].reduce((sum, buffer) => sum + buffer.rows, 0), deadLetters: deadLetters?.counts() ?? {} }),
  };
}
