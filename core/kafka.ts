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
 * A KafkaJS-style group consumer reading committed data from the beginning, for tools and tests
 * that inspect a topic (dead letters, outputs). Stream jobs do not use it: they run on the
 * runtime in core/stream-job.ts.
 */
export function createConsumer(config: Pick<Config, 'KAFKA_BROKERS'>, groupId: string): KafkaJS.Consumer {
  return createKafka(config, groupId).consumer({
    kafkaJS: { groupId, fromBeginning: true, autoCommit: false },
    'isolation.level': 'read_committed',
    'queued.max.messages.kbytes': 4 * 1024,
  } as KafkaJS.ConsumerConstructorConfig);
}
