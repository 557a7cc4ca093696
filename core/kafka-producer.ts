import kafkaJavascript, { KafkaJS } from '@confluentinc/kafka-javascript';
import type { Config } from './config.ts';
import { createKafka } from './kafka.ts';

export interface ProducerTuning {
  /** 0, 1 or -1 (all). The platform's producers use -1 with idempotence. */
  acks?: 0 | 1 | -1;
  lingerMs?: number;
  compression?: 'none' | 'lz4' | 'zstd' | 'snappy' | 'gzip';
  transactionalId?: string;
}

/**
 * A producer with the platform's delivery guarantees: idempotent, acks=all, and the murmur2
 * partitioner, so a key lands on the same partition as with a Java client's default partitioner.
 */
export function createProducer(config: Pick<Config, 'KAFKA_BROKERS'>, clientId: string, tuning: ProducerTuning = {}): KafkaJS.Producer {
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

export interface BatchProducer {
  /**
   * Produces `messages` and resolves once every one has its delivery report (acknowledged by the
   * in-sync replicas with acks=all), with how many failed and the first error.
   */
  send(topic: string, messages: Array<{ key: string | null; value: Buffer }>): Promise<{ failed: number; firstError?: Error }>;
  close(): Promise<void>;
}

/**
 * The same guarantees as createProducer() (idempotent, acks=all, murmur2), on librdkafka's
 * callback API: one native call per record and one delivery report per record, without the
 * KafkaJS-compatible layer's promise per message. Measured here with `pnpm run producer` (300k
 * records): 93k records/s against 76-89k through `send()`.
 */
export async function createBatchProducer(config: Pick<Config, 'KAFKA_BROKERS'>, clientId: string, tuning: ProducerTuning = {}): Promise<BatchProducer> {
  const acks = tuning.acks ?? -1;
  const producer = new kafkaJavascript.Producer(
    {
      'metadata.broker.list': config.KAFKA_BROKERS.join(','),
      'client.id': clientId,
      acks,
      'enable.idempotence': acks === -1,
      'linger.ms': tuning.lingerMs ?? 5,
      'compression.type': tuning.compression ?? 'lz4',
      'batch.num.messages': 10_000,
      'queue.buffering.max.kbytes': 64 * 1024,
      partitioner: 'murmur2_random',
      dr_cb: true,
    },
    {},
  );
  await new Promise<void>((resolve, reject) => producer.connect({}, (err) => (err ? reject(err) : resolve())));
  producer.setPollInterval(5);
  interface Pending {
    outstanding: number;
    failed: number;
    firstError?: Error;
    done(): void;
  }
  producer.on('delivery-report', (err, report) => {
    const pending = report.opaque as Pending;
    if (err) {
      pending.failed++;
      pending.firstError ??= new Error(err.message);
    }
    if (--pending.outstanding === 0) pending.done();
  });
  return {
    async send(topic, messages) {
      if (!messages.length) return { failed: 0 };
      let done: () => void = () => {};
      const finished = new Promise<void>((resolve) => (done = resolve));
      const pending: Pending = { outstanding: messages.length, failed: 0, done };
      for (const message of messages) {
        for (;;) {
          try {
            producer.produce(topic, null, message.value, message.key, null, pending);
            break;
          } catch (error) {
            // librdkafka's local queue is full: wait for delivery reports to drain it
            if ((error as { code?: number }).code !== kafkaJavascript.CODES.ERRORS.ERR__QUEUE_FULL) throw error;
            await new Promise((resolve) => setTimeout(resolve, 2));
          }
        }
      }
      await finished;
      return { failed: pending.failed, firstError: pending.firstError };
    },
    close: () =>
      new Promise<void>((resolve) => {
        producer.flush(10_000, () => producer.disconnect(() => resolve()));
      }),
  };
}
