import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { avroCodec, schemaViolations, type AvroCodec } from '../core/avro.ts';
import type { TopicDeclaration } from '../platform/catalog.ts';
import type { Config } from '../core/config.ts';
import type { KafkaConnection } from '../core/kafka.ts';
import { errorMessage } from '../core/errors.ts';
import { randomUUID } from 'node:crypto';
import { createGroupCommitter } from '../core/group-commit.ts';
import type { OutgoingMessage, ProducerTuning } from '../core/kafka-producer.ts';
import { createLogger } from '../core/log.ts';
import { createRegistry, schemaLookupError } from '../core/registry.ts';

export interface TopicProducerOptions extends Pick<ProducerTuning, 'lingerMs' | 'compression'> {
  /** The registered schema to write with; defaults to the latest under `<topic>-value`. */
  schemaId?: number;
  registry?: SchemaRegistry;
  clientId?: string;
  /** How long a send may keep retrying aborted transactions before it fails (default 120 s). */
  deliveryTimeoutMs?: number;
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
  /** Transactions aborted (a broker or the coordinator failing) and sent again so far. */
  readonly retried: number;
  /**
   * Validates (the topic's rules), encodes and sends `records`, keyed by the topic's key field;
   * resolves once they are committed, visible to read_committed readers exactly once. Invalid
   * records are refused, never sent. Rejects with DELIVERY_FAILED if they could not be committed
   * in time (nothing of them visible), or, not retriable, when the commit's outcome is unknown;
   * nothing is dropped silently.
   */
  send(records: unknown[]): Promise<SendOutcome>;
  close(): Promise<void>;
}

/**
 * A producer for one declared topic (platform/catalog.ts): its rules, its key field, its registered
 * schema; murmur2 keys. `topic.name` may be namespaced.
 *
 * Sends are committed in Kafka transactions, grouped while a commit runs (`core/group-commit.ts`
 * says why transactions and not only idempotence).
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
  // one id per producer process: two producers of a topic run side by side without fencing each other
  const transactionalId = `${topic.name}-producer-${randomUUID().slice(0, 8)}`;
  const committer = await createGroupCommitter(config, {
    transactionalId,
    lingerMs: options.lingerMs,
    compression: options.compression,
    deliveryTimeoutMs: options.deliveryTimeoutMs,
    log: createLogger('producer', { topic: topic.name, transactionalId }),
  });

  /**
   * Validated and encoded when sent, not inside the transaction: the next group is encoded while
   * the previous commit is on the wire, and an aborted group is sent again without re-encoding.
   */
  function encodeAll(records: unknown[]): { messages: OutgoingMessage[]; outcome: SendOutcome } {
    const outcome: SendOutcome = { sent: 0, bytes: 0, refused: [] };
    const messages: OutgoingMessage[] = [];
    for (const record of records) {
      let value: Buffer;
      try {
        topic.rules?.(record as Record<string, unknown>);
        value = Buffer.from(codec.encodeTransient(record));
      } catch (error) {
        // avsc's own message does not say which field; the schema walk (only on failure) does
        const violations = schemaViolations(codec.type, record).map(({ field, message }) => `${field} ${message}`);
        outcome.refused.push({ record, reason: violations.length ? `${topic.name} record: ${violations.join('; ')}` : errorMessage(error) });
        continue;
      }
      // Keys are the key field's text, so any client hashing the same bytes agrees on the partition.
      const key = String((record as Record<string, unknown>)[topic.key]);
      outcome.bytes += value.length + key.length;
      outcome.sent++;
      messages.push({ key, value });
    }
    return { messages, outcome };
  }

  return {
    topic: topic.name,
    schemaId,
    get retried() {
      return committer.retried;
    },
    async send(records) {
      const { messages, outcome } = encodeAll(records);
      if (messages.length) await committer.send(topic.name, messages);
      return outcome;
    },
    close: () => committer.close(),
  };
}
