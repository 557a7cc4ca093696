import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { avroCodec, type AvroCodec } from '../core/avro.ts';
import type { TopicDeclaration } from '../platform/catalog.ts';
import type { Config } from '../core/config.ts';
import type { KafkaConnection } from '../core/kafka.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { createBatchProducer, type OutgoingMessage, type ProducerTuning } from '../core/kafka-producer.ts';
import { createRegistry, schemaLookupError } from '../core/registry.ts';

export interface TopicProducerOptions extends ProducerTuning {
  /** The registered schema to write with; defaults to the latest under `<topic>-value`. */
  schemaId?: number;
  registry?: SchemaRegistry;
  clientId?: string;
}

export interface SendOutcome {
  sent: number;
  bytes: number;
  /** Records refused before sending, each with the reason naming the field. */
  refused: Array<{ record: unknown; reason: string }>;
}

export interface TopicProducer {
  readonly topic: string;
  readonly schemaId: number;
  /**
   * Validates (the topic's rules), encodes and sends `records`, keyed by the topic's key field;
   * resolves when all valid ones are acknowledged by every in-sync replica. Invalid records are
   * refused, never sent. Rejects with DELIVERY_FAILED if the broker did not take them; nothing
   * is dropped silently.
   */
  send(records: unknown[]): Promise<SendOutcome>;
  close(): Promise<void>;
}

/**
 * A producer for one declared topic (platform/catalog.ts): its rules, its key field, its registered
 * schema; idempotent, acks=all, murmur2 keys. `topic.name` may be namespaced.
 */
export async function createTopicProducer(
  config: KafkaConnection & Pick<Config, 'SCHEMA_REGISTRY_URL'>,
  topic: Pick<TopicDeclaration, 'name' | 'key' | 'rules'>,
  options: TopicProducerOptions = {},
): Promise<TopicProducer> {
  const registry = options.registry ?? createRegistry(config);
  let schemaId = options.schemaId;
  if (schemaId === undefined) {
    try {
      schemaId = await registry.getLatestSchemaId(`${topic.name}-value`);
    } catch (cause) {
      throw schemaLookupError(config.SCHEMA_REGISTRY_URL, `${topic.name}-value`, cause);
    }
  }
  const codec: AvroCodec = await avroCodec(registry, schemaId);
  const producer = await createBatchProducer(config, options.clientId ?? `lakestream-${topic.name}-producer`, options);

  return {
    topic: topic.name,
    schemaId,
    async send(records) {
      const refused: SendOutcome['refused'] = [];
      let bytes = 0;
      // Validated and encoded one at a time as the producer takes them, into one reused buffer.
      function* messages(): Generator<OutgoingMessage> {
        for (const record of records) {
          try {
            topic.rules?.(record as Record<string, unknown>);
          } catch (error) {
            refused.push({ record, reason: errorMessage(error) });
            continue;
          }
          const value = codec.encodeTransient(record);
          // Keys are the key field's text, so any client hashing the same bytes agrees on the partition.
          const key = String((record as Record<string, unknown>)[topic.key]);
          bytes += value.length + key.length;
          yield { key, value };
        }
      }
      const { sent, failed, firstError } = await producer.send(topic.name, messages());
      if (failed) {
        throw new LakestreamError('DELIVERY_FAILED', `${failed} of ${sent} records not delivered to ${topic.name}: ${errorMessage(firstError)}`, {
          cause: firstError,
          retriable: true,
          context: { topic: topic.name, records: failed },
        });
      }
      return { sent, bytes, refused };
    },
    close: () => producer.close(),
  };
}
