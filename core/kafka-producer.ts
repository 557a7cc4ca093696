import { KafkaJS } from '@confluentinc/kafka-javascript';
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
