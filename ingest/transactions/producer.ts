import { topicDeclarations } from '../../platform/catalog.ts';
import type { Config } from '../../core/config.ts';
import type { KafkaConnection } from '../../core/kafka.ts';
import { createTopicProducer, type TopicProducer, type TopicProducerOptions } from '../topic-producer.ts';

export type { SendOutcome } from '../topic-producer.ts';
export type TransactionsProducer = TopicProducer;

export interface TransactionsProducerOptions extends TopicProducerOptions {
  /** Default `transactions`; a namespaced pipeline passes its own. */
  topic?: string;
}

/** The transactions producer, usable from any service: `await createTransactionsProducer(config)`. */
export function createTransactionsProducer(config: KafkaConnection & Pick<Config, 'SCHEMA_REGISTRY_URL'>, options: TransactionsProducerOptions = {}): Promise<TransactionsProducer> {
  const declaration = topicDeclarations.transactions;
  return createTopicProducer(config, { ...declaration, name: options.topic ?? declaration.name }, { clientId: 'lakestream-transactions-producer', ...options });
}
