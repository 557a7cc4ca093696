import { avroCodec, type AvroCodec } from '../avro.ts';
import { LakestreamError } from '../errors.ts';
import { restoreKeyedState } from '../changelog.ts';
import type { Logger } from '../log.ts';
import { createStreamJob } from './job.ts';
import type { BatchContext, RuntimeContext, StreamJob, StreamRecord } from './types.ts';

/**
 * Stateful processors on the runtime: a processor declares its keyed state stores and handles
 * one record at a time; the runtime does the rest, inside each batch's Kafka transaction:
 *
 * - restores a store's partitions from its compacted changelog on assignment (and a partition
 *   whose state an abort dropped, before its next batch);
 * - writes each key changed in a batch to the changelog once, in the transaction;
 * - evicts keys idle for longer than the store's `idleMs` (wall clock) with a tombstone;
 * - drops the partitions of a revocation, and rolls back on abort (the state is rebuilt from
 *   what committed);
 * - `forward` encodes with the topic's codec, looked up once.
 *
 * Output and changelogs are co-partitioned with the input: a record's outputs and its state
 * go to the input record's partition number, so a restore of partition p reads changelog
 * partition p. See docs/decisions/0007-catalog-and-stream-job-runtime.md.
 */
export interface StoreSpec<V> {
  /** The compacted topic the store is restored from (and, unless `changelogIsOutput`, written to). */
  changelog: string;
  /** The changelog record of a key's value. */
  encode(key: string, value: V, eventTime: number): Record<string, unknown>;
  decode(record: Record<string, unknown>, key: string): V;
  /** Keys neither put nor touched for this long (wall clock) are forgotten, with a tombstone. */
  idleMs?: number;
  /**
   * The changelog is the processor's own output, one record per change that the handler
   * forwards (the features job's counts): the runtime restores from it and writes nothing.
   */
  changelogIsOutput?: boolean;
  /**
   * The newest event time a value holds (a user's newest transaction): the store then keeps each
   * partition's stream time, the newest of these over the partition's values, restored with them.
   */
  eventTimeOf?(value: V): number;
}

/** A store as a handler sees it: the keys of the partition of the record being processed. */
export interface KeyValueStore<V> {
  get(key: string): V | undefined;
  /** Sets a key's value; it goes to the changelog once at the end of the batch. */
  put(key: string, value: V, eventTime: number): void;
  /** Keeps a key from eviction without changing it. */
  touch(key: string): void;
  readonly size: number;
  /** With `eventTimeOf`: the newest event time of any value put in this partition (undefined before the first). */
  readonly streamTime: number | undefined;
}

type StoreSpecs = Record<string, StoreSpec<any>>;
type ValueOf<S> = S extends StoreSpec<infer V> ? V : never;

export interface ProcessorContext<Stores extends StoreSpecs> {
  readonly partition: number;
  readonly stores: { [K in keyof Stores]: KeyValueStore<ValueOf<Stores[K]>> };
  /** Adds a record to the batch's transaction, in the input record's partition (a promise only while a codec loads or the queue is full). */
  forward(topic: string, key: string, value: object): Promise<void> | void;
  /** Dead-letters the record in the batch's transaction (a LakestreamError's `reason` names why). */
  deadLetter(record: StreamRecord, error: unknown): Promise<void> | void;
}

export interface ProcessorHandler<In, Stores extends StoreSpecs> {
  /** Once per batch, before its records (a model check). */
  beforeBatch?(): Promise<void>;
  process(value: In, context: ProcessorContext<Stores>, record: StreamRecord): Promise<void> | void;
  /** SIGHUP. */
  reload?(): Promise<void>;
  /** The job is stopping (after its last transaction). */
  close?(): Promise<void>;
  stats?(): Record<string, unknown>;
}

export interface ProcessorSpec<Stores extends StoreSpecs> {
  /** The consumer group (namespaced). */
  name: string;
  input: string;
  /** Stable per process (see `StreamJobOptions.instance`). */
  instance?: string;
  stores: Stores;
}

interface Entry<V> {
  value: V;
  touchedAt: number;
}

interface StoreStats {
  size: number;
  restored: number;
  evicted: number;
}

/** One store's partitions, what a batch changed in them, and their restore and eviction. */
class PartitionedStore<V> {
  readonly partitions = new Map<number, Map<string, Entry<V>>>();
  /** Per partition, with `eventTimeOf`: the newest event time put (Kafka Streams' stream time). */
  private readonly streamTimes = new Map<number, number>();
  /** Keys changed in the batch under way, per partition, with the latest event time of the change; null: evicted. */
  private readonly dirty = new Map<number, Map<string, number | null>>();
  private sweptAt = Date.now();
  restored = 0;
  evicted = 0;

  constructor(
    readonly name: string,
    readonly spec: StoreSpec<V>,
  ) {
    // an eviction's tombstone is the runtime's to write: a handler-written changelog would keep the key
    if (spec.idleMs !== undefined && spec.changelogIsOutput) throw new LakestreamError('USAGE', `store ${name}: idleMs needs a changelog the runtime writes (not changelogIsOutput)`);
    // a stream time restored from the values must see every value the partition ever kept
    if (spec.idleMs !== undefined && spec.eventTimeOf) throw new LakestreamError('USAGE', `store ${name}: eventTimeOf needs every key kept (no idleMs)`);
  }

  view(partition: number): KeyValueStore<V> {
    const map = this.partitions.get(partition)!;
    const evicts = this.spec.idleMs !== undefined;
    const logged = !this.spec.changelogIsOutput;
    const eventTimeOf = this.spec.eventTimeOf;
    const streamTimes = this.streamTimes;
    const changed = () => {
      let keys = this.dirty.get(partition);
      if (!keys) this.dirty.set(partition, (keys = new Map()));
      return keys;
    };
    return {
      get: (key) => map.get(key)?.value,
      put: (key, value, eventTime) => {
        // the hot path of every stateful processor: no allocation for a key already held, no
        // clock read for a store that never evicts, no change tracking for one the handler logs
        const touchedAt = evicts ? Date.now() : 0;
        const entry = map.get(key);
        if (entry) {
          entry.value = value;
          entry.touchedAt = touchedAt;
        } else {
          map.set(key, { value, touchedAt });
        }
        if (eventTimeOf) {
          const time = eventTimeOf(value);
          const current = streamTimes.get(partition);
          if (current === undefined || time > current) streamTimes.set(partition, time);
        }
        if (logged) {
          const keys = changed();
          const previous = keys.get(key);
          keys.set(key, previous == null || eventTime > previous ? eventTime : previous);
        }
      },
      touch: (key) => {
        const entry = evicts ? map.get(key) : undefined;
        if (entry) entry.touchedAt = Date.now();
      },
      get size() {
        return map.size;
      },
      get streamTime() {
        return streamTimes.get(partition);
      },
    };
  }

  /** Rebuilds `partitions` from the changelog; returns the changelog records read. */
  async restore(context: RuntimeContext, partitions: number[]): Promise<number> {
    const { states, records } = await restoreKeyedState(context, this.spec.changelog, partitions, {
      key: String,
      value: (record) => record,
    });
    const now = Date.now();
    const eventTimeOf = this.spec.eventTimeOf;
    for (const partition of partitions) this.streamTimes.delete(partition);
    for (const [partition, state] of states) {
      const map = new Map<string, Entry<V>>();
      let streamTime: number | undefined;
      for (const [key, record] of state) {
        const value = this.spec.decode(record, key);
        map.set(key, { value, touchedAt: now });
        if (eventTimeOf) {
          const time = eventTimeOf(value);
          if (streamTime === undefined || time > streamTime) streamTime = time;
        }
      }
      this.partitions.set(partition, map);
      if (streamTime !== undefined) this.streamTimes.set(partition, streamTime);
    }
    this.restored += records;
    return records;
  }

  /** Forgets keys idle past `idleMs` in every partition, every quarter of that period. Returns whether it swept. */
  sweep(): boolean {
    const idleMs = this.spec.idleMs;
    if (idleMs === undefined || Date.now() - this.sweptAt < idleMs / 4) return false;
    const now = Date.now();
    for (const [partition, map] of this.partitions) {
      for (const [key, entry] of map) {
        if (now - entry.touchedAt <= idleMs) continue;
        map.delete(key);
        this.evicted++;
        let keys = this.dirty.get(partition);
        if (!keys) this.dirty.set(partition, (keys = new Map()));
        keys.set(key, null);
      }
    }
    this.sweptAt = now;
    return true;
  }

  /** The batch's changes as changelog records: a value per changed key, a tombstone per evicted one. */
  async flush(produce: (partition: number, key: string, record: Record<string, unknown> | null) => Promise<void> | void): Promise<void> {
    const dirty = [...this.dirty];
    this.dirty.clear();
    if (this.spec.changelogIsOutput) return;
    for (const [partition, keys] of dirty) {
      const map = this.partitions.get(partition);
      for (const [key, eventTime] of keys) {
        const entry = map?.get(key);
        const produced = produce(partition, key, eventTime === null || !entry ? null : this.spec.encode(key, entry.value, eventTime));
        if (produced) await produced;
      }
    }
  }

  drop(partitions: Iterable<number>): void {
    for (const partition of partitions) {
      this.partitions.delete(partition);
      this.streamTimes.delete(partition);
    }
    this.dirty.clear();
  }

  clear(): void {
    this.partitions.clear();
    this.streamTimes.clear();
    this.dirty.clear();
  }

  stats(): StoreStats {
    let size = 0;
    for (const map of this.partitions.values()) size += map.size;
    return { size, restored: this.restored, evicted: this.evicted };
  }
}

/** A `transaction`-mode stream job for a stateful processor. */
export function createProcessorJob<In, Stores extends StoreSpecs>(
  spec: ProcessorSpec<Stores>,
  context: RuntimeContext,
  createHandler: (log: Logger) => ProcessorHandler<In, Stores>,
): StreamJob {
  const stores = Object.entries(spec.stores).map(([name, storeSpec]) => new PartitionedStore(name, storeSpec));
  // Codecs are looked up once per topic; once known, a forward is synchronous unless librdkafka's
  // queue is full (no promise per record on the hot path).
  const codecs = new Map<string, AvroCodec>();
  const loadCodec = async (topic: string) => {
    const codec = await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${topic}-value`));
    codecs.set(topic, codec);
    return codec;
  };
  const produceEncoded = (batch: BatchContext, topic: string, partition: number, key: string, value: object | null): Promise<void> | void => {
    if (value === null) return batch.produce(topic, { key, partition, value: null });
    const codec = codecs.get(topic);
    if (codec) return batch.produce(topic, { key, partition, value: codec.encodeTransient(value) });
    return loadCodec(topic).then((loaded) => batch.produce(topic, { key, partition, value: loaded.encodeTransient(value) }));
  };

  async function restore(partitions: number[], log: Logger): Promise<void> {
    if (!partitions.length || !stores.length) return;
    const records = await Promise.all(stores.map((store) => store.restore(context, partitions)));
    log.info('restored state', { partitions, records: records.reduce((a, b) => a + b, 0), keys: Object.fromEntries(stores.map((store) => [store.name, store.stats().size])) });
  }

  return createStreamJob({ name: spec.name, topic: spec.input, commit: 'transaction', instance: spec.instance }, context, ({ log }) => {
    const handler = createHandler(log);
    /** A sweep changes every partition's state, not only the batch's: an abort then drops all. */
    let sweptInTransaction = false;
    return {
      async handle(batches, batchContext) {
        sweptInTransaction = false;
        await handler.beforeBatch?.();
        for (const batch of batches) {
          // after an abort, the partition's state is rebuilt from what committed
          const missing = stores.some((store) => !store.partitions.has(batch.partition));
          if (missing) await restore([batch.partition], log);
          const views = Object.fromEntries(stores.map((store) => [store.name, store.view(batch.partition)])) as ProcessorContext<Stores>['stores'];
          const processorContext: ProcessorContext<Stores> = {
            partition: batch.partition,
            stores: views,
            forward: (topic, key, value) => produceEncoded(batchContext, topic, batch.partition, key, value),
            deadLetter: (record, error) => batchContext.deadLetter(record, error),
          };
          for (const record of batch.records) {
            const pending = handler.process(record.value as In, processorContext, record);
            if (pending) await pending;
          }
        }
        for (const store of stores) {
          if (store.sweep()) sweptInTransaction = true;
          await store.flush((partition, key, record) => produceEncoded(batchContext, store.spec.changelog, partition, key, record));
        }
      },
      assigned: (partitions) => restore(partitions, log),
      revoked: async (partitions) => {
        for (const store of stores) store.drop(partitions);
      },
      aborted: (partitions) => {
        for (const store of stores) {
          if (sweptInTransaction) store.clear();
          else store.drop(partitions);
        }
      },
      reload: async () => handler.reload?.(),
      close: async () => handler.close?.(),
      stats: () => ({ ...handler.stats?.(), stores: Object.fromEntries(stores.map((store) => [store.name, store.stats()])) }),
    };
  });
}
