import kafkaJavascript, { KafkaJS } from '@confluentinc/kafka-javascript';
import { createKafka, type KafkaConnection, librdkafkaBase } from './kafka.ts';
import { connectOrExplain } from './kafka-probe.ts';
import { fromCallback } from './async.ts';

export interface ProducerTuning {
  /** 0, 1 or -1 (all). The platform's producers use -1 with idempotence. */
  acks?: 0 | 1 | -1;
  lingerMs?: number;
  compression?: 'none' | 'lz4' | 'zstd' | 'snappy' | 'gzip';
  transactionalId?: string;
  /** How long connecting may wait for a broker to answer before failing (default 10 s). */
  connectTimeoutMs?: number;
  /** How long a record may wait for its acknowledgement, retries included, before it fails (librdkafka's default: 300 s). */
  deliveryTimeoutMs?: number;
  /** librdkafka's statistics every second (JSON parsed), e.g. for retry counts. */
  onStatistics?: (statistics: Record<string, unknown>) => void;
  /** Keep track of whether any broker is connected (`BatchProducer.brokersUp`). */
  trackBrokers?: boolean;
}

/**
 * A producer with the platform's delivery guarantees: idempotent, acks=all, and the murmur2
 * partitioner, so a key lands on the same partition as with a Java client's default partitioner.
 */
export function createProducer(config: KafkaConnection, clientId: string, tuning: ProducerTuning = {}): KafkaJS.Producer {
  const acks = tuning.acks ?? -1;
  return createKafka(config, clientId).producer({
    kafkaJS: {
      acks,
      idempotent: acks === -1,
      // the key must be absent, not undefined, or the client treats the producer as transactional
      ...(tuning.transactionalId ? { transactionalId: tuning.transactionalId } : {}),
      compression: (tuning.compression ?? 'lz4') as KafkaJS.CompressionTypes,
    },
    partitioner: 'murmur2_random',
    'linger.ms': tuning.lingerMs ?? 5,
    'batch.num.messages': 10_000,
    'queue.buffering.max.kbytes': 64 * 1024,
    ...(tuning.transactionalId ? { 'transaction.timeout.ms': 30_000 } : {}),
  } as KafkaJS.ProducerConstructorConfig);
}

export interface OutgoingMessage {
  key: string | Buffer | null;
  value: Buffer | null;
  /** Default: murmur2 of the key, as a Java client would pick. */
  partition?: number;
  headers?: Array<Record<string, string | Buffer>>;
}

export interface BatchProducer {
  /**
   * Produces `messages` and resolves once every one has its delivery report (acknowledged by the
   * in-sync replicas with acks=all), with how many failed and the first error.
   */
  /**
   * With `positions`, each record's partition and offset by its index, and for a record not
   * delivered its error code (`errors`).
   */
  send(
    topic: string,
    messages: Iterable<OutgoingMessage>,
    options?: { positions?: boolean },
  ): Promise<{ sent: number; failed: number; firstError?: Error; positions?: Array<DeliveredAt | undefined>; errors?: Array<number | undefined> }>;
  /**
   * With `trackBrokers`: false from the moment librdkafka reports every broker down until its
   * statistics show one connected again. A record produced meanwhile can wait in librdkafka's
   * queue past its delivery timeout (seen here: 45 s against 20 s) and land once Kafka is back,
   * so a caller that must answer now refuses it instead of queueing it.
   */
  brokersUp(): boolean;
  close(): Promise<void>;
}

/** A record's delivery report: its error code, or where it was stored. */
export type DeliveryCallback = (error: number | undefined, position: DeliveredAt | undefined) => void;

/** Where Kafka stored a record. */
export interface DeliveredAt {
  partition: number;
  offset: number;
}

/**
 * The same guarantees as createProducer() (idempotent, acks=all, murmur2), on librdkafka's
 * callback API: one native call per record and one delivery report per record, without the
 * KafkaJS-compatible layer's promise per message. Measured here with `pnpm run producer` (300k
 * records): 93k records/s against 76-89k through `send()`.
 */
export async function createBatchProducer(config: KafkaConnection, clientId: string, tuning: ProducerTuning = {}): Promise<BatchProducer> {
  const acks = tuning.acks ?? -1;
  const producer = new kafkaJavascript.Producer(
    {
      ...librdkafkaBase(config),
      'client.id': clientId,
      acks,
      'enable.idempotence': acks === -1,
      'linger.ms': tuning.lingerMs ?? 5,
      'compression.type': tuning.compression ?? 'lz4',
      'batch.num.messages': 10_000,
      'queue.buffering.max.kbytes': 64 * 1024,
      partitioner: 'murmur2_random',
      dr_cb: true,
      ...(tuning.deliveryTimeoutMs ? { 'message.timeout.ms': tuning.deliveryTimeoutMs } : {}),
      ...(tuning.onStatistics || tuning.trackBrokers ? { 'statistics.interval.ms': 1_000 } : {}),
    },
    {},
  );
  const brokersUp = tuning.trackBrokers ? trackBrokers(producer) : () => true;
  if (tuning.onStatistics) {
    producer.on('event.stats', (event: { message: string }) => tuning.onStatistics?.(JSON.parse(event.message) as Record<string, unknown>));
  }
  await connectOrExplain(producer, config, tuning.connectTimeoutMs ?? 10_000);
  producer.setPollInterval(5);
  interface Pending {
    /** Records produced and not yet reported, plus one while the sending loop runs. */
    outstanding: number;
    failed: number;
    firstError?: Error;
    /** Asked for: each record's partition and offset, by its index in the send. */
    positions?: Array<DeliveredAt | undefined>;
    errors?: Array<number | undefined>;
    done(): void;
  }
  producer.on('delivery-report', (err, report) => {
    // one shared opaque per send, or (positions asked for) one per record with its index
    const opaque = report.opaque as Pending | { pending: Pending; index: number };
    const pending = 'pending' in opaque ? opaque.pending : opaque;
    if (err) {
      pending.failed++;
      pending.firstError ??= Object.assign(new Error(err.message), { code: err.code });
      if ('pending' in opaque) pending.errors![opaque.index] = err.code;
    } else if ('pending' in opaque) {
      pending.positions![opaque.index] = { partition: report.partition, offset: Number(report.offset) };
    }
    if (--pending.outstanding === 0) pending.done();
  });
  return {
    // `messages` may be a generator handing out transient buffers: each one is produced (and so
    // copied by librdkafka) before the next is asked for.
    async send(topic, messages, options = {}) {
      let done: () => void = () => {};
      const finished = new Promise<void>((resolve) => (done = resolve));
      const pending: Pending = { outstanding: 1, failed: 0, done, ...(options.positions ? { positions: [], errors: [] } : {}) };
      let sent = 0;
      for (let message of messages) {
        for (;;) {
          try {
            producer.produce(topic, message.partition ?? null, message.value, message.key, null, pending.positions ? { pending, index: sent } : pending, message.headers);
            pending.outstanding++;
            sent++;
            break;
          } catch (error) {
            // librdkafka's local queue is full: wait for delivery reports to drain it, keeping a
            // copy of a transient payload that another send could overwrite meanwhile
            if ((error as { code?: number }).code !== kafkaJavascript.CODES.ERRORS.ERR__QUEUE_FULL) throw error;
            message = ownCopy(message);
            await new Promise((resolve) => setTimeout(resolve, 2));
          }
        }
      }
      if (--pending.outstanding === 0) pending.done();
      await finished;
      return { sent, failed: pending.failed, firstError: pending.firstError, ...(pending.positions ? { positions: pending.positions, errors: pending.errors } : {}) };
    },
    brokersUp,
    close: () =>
      new Promise<void>((resolve) => {
        producer.flush(10_000, () => {
          stopPolling(producer);
          producer.disconnect(() => resolve());
        });
      }),
  };
}

/**
 * A transactional producer on librdkafka's callback API, for consume-transform-produce: records
 * produced between `begin()` and `commit()`, together with the consumer offsets given to
 * `sendOffsets()`, become visible to read_committed readers all at once or not at all.
 * `connect` initialises the transactional id, which fences a predecessor with the same id and
 * aborts its open transaction.
 */
export interface TransactionalProducer {
  begin(): Promise<void>;
  /**
   * Queues a record into the open transaction (waiting while librdkafka's queue is full). With
   * `deliveryReports`, `delivered` gets where it was stored (final once the transaction commits)
   * or librdkafka's error code.
   */
  produce(topic: string, message: OutgoingMessage, delivered?: DeliveryCallback): Promise<void> | void;
  sendOffsets(offsets: Array<{ topic: string; partition: number; offset: number }>, consumer: kafkaJavascript.KafkaConsumer): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
  /** With `trackBrokers`, as `BatchProducer.brokersUp`; else always true. */
  brokersUp(): boolean;
  close(): Promise<void>;
}

/**
 * Testing knobs for the transactional producers whose id starts with `transactionalIdPrefix`.
 * What a job does with a commit whose outcome it cannot know, or with a coordinator that stops
 * answering mid-transaction, is otherwise a window of milliseconds in a broker failover.
 */
export const transactionFaults: {
  /** The next N commits reach the broker and succeed there, and then report the timeout a lost answer would. */
  commitAnswersToLose: number;
  transactionalIdPrefix: string;
  /** Awaited just before a transactional call goes out (a test pauses the coordinator's broker there). */
  before?: (call: 'sendOffsetsToTransaction' | 'commitTransaction', transactionalId: string) => Promise<void>;
  /** commitTransaction's own timeout (60 s), shortened so that a test's pause outlasts it. */
  commitTimeoutMs?: number;
} = { commitAnswersToLose: 0, transactionalIdPrefix: '' };

export type TransactionalTuning = Pick<ProducerTuning, 'lingerMs' | 'compression'> & {
  /** A delivery report per record to `produce`'s callback: one JS call per record, so only for callers that need positions. */
  deliveryReports?: boolean;
  trackBrokers?: boolean;
};

export async function createTransactionalProducer(config: KafkaConnection, transactionalId: string, tuning: TransactionalTuning = {}): Promise<TransactionalProducer> {
  // While a cluster recovers, its transaction coordinator may time out, be loading its log
  // (COORDINATOR_LOAD_IN_PROGRESS) or have moved: librdkafka reports these from initTransactions
  // instead of retrying. A fresh producer each time, because some of them leave it fenced.
  for (let attempt = 1; ; attempt++) {
    try {
      return await initTransactionalProducer(config, transactionalId, tuning);
    } catch (error) {
      if (!coordinatorUnavailable(error) || attempt >= 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 10_000)));
    }
  }
}

/** librdkafka's codes for a transaction coordinator that cannot answer yet. */
function coordinatorUnavailable(error: unknown): boolean {
  const { ERRORS } = kafkaJavascript.CODES;
  const code = (error as { code?: number }).code;
  return [ERRORS.ERR__TIMED_OUT, ERRORS.ERR__TRANSPORT, ERRORS.ERR_COORDINATOR_LOAD_IN_PROGRESS, ERRORS.ERR_COORDINATOR_NOT_AVAILABLE, ERRORS.ERR_NOT_COORDINATOR].includes(code as number);
}

async function initTransactionalProducer(config: KafkaConnection, transactionalId: string, tuning: TransactionalTuning): Promise<TransactionalProducer> {
  const producer = new kafkaJavascript.Producer(
    {
      ...librdkafkaBase(config),
      'client.id': transactionalId,
      'transactional.id': transactionalId,
      'enable.idempotence': true,
      acks: -1,
      'linger.ms': tuning.lingerMs ?? 5,
      'compression.type': tuning.compression ?? 'lz4',
      'batch.num.messages': 10_000,
      'queue.buffering.max.kbytes': 64 * 1024,
      'transaction.timeout.ms': 30_000,
      // A transaction begun right after the previous commit is refused with CONCURRENT_TRANSACTIONS
      // until the coordinator has written the markers; librdkafka retries after retry.backoff.ms,
      // whose default of 100 ms (growing exponentially) made every transaction ~100 ms long; Java uses 20 ms.
      'retry.backoff.ms': 10,
      'retry.backoff.max.ms': 20,
      partitioner: 'murmur2_random',
      ...(tuning.deliveryReports ? { dr_cb: true } : {}),
      ...(tuning.trackBrokers ? { 'statistics.interval.ms': 1_000 } : {}),
    },
    {},
  );
  const brokers = tuning.trackBrokers ? trackBrokers(producer) : () => true;
  if (tuning.deliveryReports) {
    producer.on('delivery-report', (err, report) => {
      (report.opaque as DeliveryCallback | undefined)?.(err ? err.code : undefined, err ? undefined : { partition: report.partition, offset: Number(report.offset) });
    });
  }
  /**
   * A transactional call that has not called back well past its own timeout: seen once with two
   * brokers and the coordinator restarting, a batch then waited for ever. Reported as a fatal
   * timeout, so the job replaces this producer (whose successor fences it) and retries the batch.
   */
  const guarded = (what: string, timeoutMs: number, fn: (cb: (err: unknown) => void) => void) => {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(Object.assign(new Error(`${what} did not return within ${Math.round((timeoutMs + 15_000) / 1000)} s`), { code: kafkaJavascript.CODES.ERRORS.ERR__TIMED_OUT, isFatal: true, stuck: what }));
      }, timeoutMs + 15_000);
    });
    return Promise.race([fromCallback(fn), stuck]).finally(() => clearTimeout(timer));
  };
  await connectOrExplain(producer, config, 15_000);
  producer.setPollInterval(5);
  try {
    await fromCallback((cb) => producer.initTransactions(30_000, cb));
  } catch (error) {
    stopPolling(producer);
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
    throw error;
  }
  const faulted = () => transactionalId.startsWith(transactionFaults.transactionalIdPrefix);
  const produceOne = (topic: string, message: OutgoingMessage, delivered?: DeliveryCallback) =>
    producer.produce(topic, message.partition ?? null, message.value, message.key, null, delivered, message.headers);
  return {
    begin: () => guarded('beginTransaction', 0, (cb) => producer.beginTransaction(cb)),
    produce(topic, message, delivered) {
      try {
        produceOne(topic, message, delivered);
      } catch (error) {
        if ((error as { code?: number }).code !== kafkaJavascript.CODES.ERRORS.ERR__QUEUE_FULL) throw error;
        message = ownCopy(message);
        return (async () => {
          for (;;) {
            await new Promise((resolve) => setTimeout(resolve, 2));
            try {
              produceOne(topic, message, delivered);
              return;
            } catch (retryError) {
              if ((retryError as { code?: number }).code !== kafkaJavascript.CODES.ERRORS.ERR__QUEUE_FULL) throw retryError;
            }
          }
        })();
      }
    },
    async sendOffsets(offsets, consumer) {
      if (faulted()) await transactionFaults.before?.('sendOffsetsToTransaction', transactionalId);
      await guarded('sendOffsetsToTransaction', 30_000, (cb) => producer.sendOffsetsToTransaction(offsets, consumer, 30_000, cb));
    },
    async commit() {
      const timeoutMs = (faulted() && transactionFaults.commitTimeoutMs) || 60_000;
      if (faulted()) await transactionFaults.before?.('commitTransaction', transactionalId);
      await guarded('commitTransaction', timeoutMs, (cb) => producer.commitTransaction(timeoutMs, cb));
      if (transactionFaults.commitAnswersToLose > 0 && faulted()) {
        transactionFaults.commitAnswersToLose--;
        throw Object.assign(new Error('commitTransaction did not return (an answer lost on purpose, transactionFaults)'), { code: kafkaJavascript.CODES.ERRORS.ERR__TIMED_OUT, isFatal: true });
      }
    },
    abort: () => guarded('abortTransaction', 30_000, (cb) => producer.abortTransaction(30_000, cb)),
    brokersUp: brokers,
    // a producer replaced because it hung may hang in disconnect too: let go of it after a while
    close: () =>
      new Promise<void>((resolve) => {
        stopPolling(producer);
        const timer = setTimeout(resolve, 15_000);
        producer.disconnect(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/**
 * Whether any broker is connected: false from the moment librdkafka reports every broker down
 * until its statistics (every second) show one up again.
 */
function trackBrokers(producer: kafkaJavascript.Producer): () => boolean {
  let up = true;
  producer.on('event.stats', (event: { message: string }) => {
    const statistics = JSON.parse(event.message) as { brokers?: Record<string, { state?: string }> };
    up = Object.values(statistics.brokers ?? {}).some((broker) => broker.state === 'UP');
  });
  producer.on('event.error', (error: { code?: number }) => {
    if (error.code === kafkaJavascript.CODES.ERRORS.ERR__ALL_BROKERS_DOWN) up = false;
  });
  return () => up;
}

/**
 * The poll timer keeps calling into the native client until the 'disconnected' event, that is,
 * while disconnect tears it down on another thread: a test process died with SIGSEGV there. Stop
 * it first; flush and disconnect serve the remaining callbacks themselves.
 */
function stopPolling(producer: kafkaJavascript.Producer): void {
  producer.setPollInterval(0);
}

/** A message whose payload no longer shares memory with a reused encoding buffer. */
function ownCopy(message: OutgoingMessage): OutgoingMessage {
  return message.value ? { ...message, value: Buffer.from(message.value) } : message;
}
