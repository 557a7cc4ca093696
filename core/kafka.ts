import { KafkaJS } from '@confluentinc/kafka-javascript';
import { Admin } from '@platformatic/kafka';
import type { Config } from './config.ts';

/**
 * Data-path clients (produce, consume, transactions) use librdkafka through
 * @confluentinc/kafka-javascript. Its admin API has no DescribeConfigs / IncrementalAlterConfigs,
 * which declarative topic management needs, so administration uses @platformatic/kafka
 * (pure TypeScript, full admin protocol) instead: see docs/decisions/0002-kafka-clients.md.
 */
export function createKafka(config: Pick<Config, 'KAFKA_BROKERS'>, clientId = 'lakestream'): KafkaJS.Kafka {
  return new KafkaJS.Kafka({
    // librdkafka reports transient states (coordinator loading, broker restarts) as warnings it
    // recovers from by itself; only errors are worth a user's attention.
    kafkaJS: { brokers: config.KAFKA_BROKERS, clientId, logLevel: KafkaJS.logLevel.ERROR },
  });
}

/**
 * Settings every librdkafka client of the platform starts from: where the brokers are, and
 * TCP_NODELAY, which Java clients set and librdkafka does not by default; without it small
 * requests (transaction steps, offset commits) can wait on Nagle's algorithm.
 */
export function librdkafkaBase(config: Pick<Config, 'KAFKA_BROKERS'>): { 'metadata.broker.list': string; 'socket.nagle.disable': boolean } {
  return { 'metadata.broker.list': config.KAFKA_BROKERS.join(','), 'socket.nagle.disable': true };
}

export function createAdmin(config: Pick<Config, 'KAFKA_BROKERS'>, clientId = 'lakestream-admin'): Admin {
  return new Admin({ clientId, bootstrapBrokers: config.KAFKA_BROKERS, retries: 3, timeout: 10_000 });
}

/**
 * A group consumer for the platform's jobs: offsets are committed by the job itself (after its
 * output is durable, or inside its transaction), only committed data is read, batches are up to
 * `maxBatchSize` records (the client's default of 32 makes per-batch work, such as a Kafka
 * transaction, dominate), and prefetch is bounded so a paused job holds little memory.
 */
export function createConsumer(
  config: Pick<Config, 'KAFKA_BROKERS'>,
  groupId: string,
  options: { maxBatchSize?: number; rebalance?: (event: { code: number }, assignment: Array<{ topic: string; partition: number }>) => Promise<void> } = {},
): KafkaJS.Consumer {
  return createKafka(config, groupId).consumer({
    kafkaJS: { groupId, fromBeginning: true, autoCommit: false },
    'isolation.level': 'read_committed',
    'js.consumer.max.batch.size': options.maxBatchSize ?? 2_000,
    'queued.max.messages.kbytes': 4 * 1024,
    ...(options.rebalance ? { rebalance_cb: options.rebalance } : {}),
  } as KafkaJS.ConsumerConstructorConfig);
}
