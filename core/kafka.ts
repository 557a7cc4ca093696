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
    kafkaJS: { brokers: config.KAFKA_BROKERS, clientId, logLevel: KafkaJS.logLevel.WARN },
  });
}

export function createAdmin(config: Pick<Config, 'KAFKA_BROKERS'>, clientId = 'lakestream-admin'): Admin {
  return new Admin({ clientId, bootstrapBrokers: config.KAFKA_BROKERS, retries: 3, timeout: 10_000 });
}
