import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { avroCodec, schemaViolations, type AvroCodec } from '../core/avro.ts';
import type { TopicDeclaration } from '../platform/catalog.ts';
import type { Config } from '../core/config.ts';
import type { KafkaConnection } from '../core/kafka.ts';
import { LakestreamError, errorMessage, isRetriable } from '../core/errors.ts';
import { randomUUID } from 'node:crypto';
import { createTransactionalProducer, type ProducerTuning, type TransactionalProducer } from '../core/kafka-producer.ts';
import { createTransactionManager, TransactionOutcomeUnknown } from '../core/runtime/transactions.ts';
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
 * Sends are committed in Kafka transactions, not merely idempotent: librdkafka's idempotent
 * producer bumps its epoch after some produce errors (a skipped sequence in a leader change, a
 * timed-out message) and then renumbers records that may already be stored on other partitions,
 * which writes them twice (confluentinc/librdkafka#4953; seen here as one duplicate in a chaos run
 * that killed two of three brokers). In a transaction that bump aborts the transaction instead,
 * and the aborted copies are never read. Sends arriving while a commit runs share the next
 * transaction (a group commit), so the cost is one commit per round trip, not per send.
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
  const log = createLogger('producer', { topic: topic.name, transactionalId });
  const manager = createTransactionManager({
    transactionalId,
    newProducer: () => createTransactionalProducer(config, transactionalId, { lingerMs: options.lingerMs, compression: options.compression }),
    log,
  });
  await manager.start();
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? 120_000;

  interface Queued {
    messages: Array<{ key: string; value: Buffer }>;
    outcome: SendOutcome;
    resolve(outcome: SendOutcome): void;
    reject(error: unknown): void;
  }
  const queue: Queued[] = [];
  let committing: Promise<void> | undefined;
  let retried = 0;

  /**
   * Validated and encoded when sent, not inside the transaction: the next group is encoded while
   * the previous commit is on the wire, and an aborted group is sent again without re-encoding.
   */
  function encodeAll(records: unknown[]): Pick<Queued, 'messages' | 'outcome'> {
    const outcome: SendOutcome = { sent: 0, bytes: 0, refused: [] };
    const messages: Queued['messages'] = [];
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

  async function produceAll(producer: TransactionalProducer, group: Queued[]): Promise<void> {
    for (const queued of group) {
      for (const message of queued.messages) await producer.produce(topic.name, message);
    }
  }

  async function commitGroup(group: Queued[]): Promise<void> {
    const deadline = performance.now() + deliveryTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await manager.run({ work: (producer) => produceAll(producer, group) });
        return;
      } catch (error) {
        const records = group.reduce((sum, queued) => sum + queued.messages.length, 0);
        if (error instanceof TransactionOutcomeUnknown) {
          // the successor producer settles it; whether these records are in the topic is then for
          // the caller to look up, never to guess by sending them again
          await manager.settle().catch(() => {});
          throw new LakestreamError('DELIVERY_FAILED', `${records} records may or may not have been written to ${topic.name}: ${errorMessage(error)}`, {
            cause: error,
            retriable: false,
            context: { topic: topic.name, records, outcome: 'unknown' },
          });
        }
        if (!isRetriable(error) || performance.now() > deadline) {
          throw new LakestreamError('DELIVERY_FAILED', `${records} records not delivered to ${topic.name} after ${attempt} transactions: ${errorMessage(error)}`, {
            cause: error,
            retriable: isRetriable(error),
            context: { topic: topic.name, records },
          });
        }
        retried++;
        log.warn('transaction aborted; sending its records again in a new one', { attempt, records, error: errorMessage(error) });
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2_000)));
      }
    }
  }

  async function commitQueued(): Promise<void> {
    while (queue.length) {
      const group = queue.splice(0, queue.length);
      try {
        await commitGroup(group);
        for (const queued of group) queued.resolve(queued.outcome);
      } catch (error) {
        for (const queued of group) queued.reject(error);
      }
    }
    committing = undefined;
  }

  return {
    topic: topic.name,
    schemaId,
    get retried() {
      return retried;
    },
    send(records) {
      return new Promise<SendOutcome>((resolve, reject) => {
        queue.push({ ...encodeAll(records), resolve, reject });
        committing ??= commitQueued();
      });
    },
    async close() {
      await committing;
      await manager.close();
    },
  };
}
