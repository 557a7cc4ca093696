import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { avroCodec, type AvroCodec } from '../../core/avro.ts';
import type { Config } from '../../core/config.ts';
import { LakestreamError, errorMessage } from '../../core/errors.ts';
import { createBatchProducer, type OutgoingMessage, type ProducerTuning } from '../../core/kafka-producer.ts';
import { createRegistry, schemaLookupError } from '../../core/registry.ts';
import { validateTransaction, type Transaction } from '../../schemas/transactions.ts';

export interface TransactionsProducerOptions extends ProducerTuning {
  topic?: string;
  /** The registered schema to write with; defaults to the latest under `<topic>-value`. */
  schemaId?: number;
  registry?: SchemaRegistry;
}

export interface SendOutcome {
  sent: number;
  bytes: number;
  /** Records refused before sending, each with the reason naming the field. */
  refused: Array<{ record: unknown; reason: string }>;
}

export interface TransactionsProducer {
  readonly topic: string;
  readonly schemaId: number;
  /**
   * Validates, encodes and sends `records`; resolves when all valid ones are acknowledged by
   * every in-sync replica. Invalid records are refused, never sent. Rejects with
   * DELIVERY_FAILED if the broker did not take them; nothing is dropped silently.
   */
  send(records: unknown[]): Promise<SendOutcome>;
  close(): Promise<void>;
}

/** The transactions producer, usable from any service: `await createTransactionsProducer(config)`. */
export async function createTransactionsProducer(
  config: Pick<Config, 'KAFKA_BROKERS' | 'SCHEMA_REGISTRY_URL'>,
  options: TransactionsProducerOptions = {},
): Promise<TransactionsProducer> {
  const topic = options.topic ?? 'transactions';
  const registry = options.registry ?? createRegistry(config);
  let schemaId = options.schemaId;
  if (schemaId === undefined) {
    try {
      schemaId = await registry.getLatestSchemaId(`${topic}-value`);
    } catch (cause) {
      throw schemaLookupError(config.SCHEMA_REGISTRY_URL, `${topic}-value`, cause);
    }
  }
  const codec: AvroCodec = await avroCodec(registry, schemaId);
  const producer = await createBatchProducer(config, 'lakestream-transactions-producer', options);

  return {
    topic,
    schemaId,
    async send(records) {
      const refused: SendOutcome['refused'] = [];
      let bytes = 0;
      // Validated and encoded one at a time as the producer takes them, into one reused buffer.
      function* messages(): Generator<OutgoingMessage> {
        for (const record of records) {
          let transaction: Transaction;
          try {
            transaction = validateTransaction(record);
          } catch (error) {
            refused.push({ record, reason: errorMessage(error) });
            continue;
          }
          const value = codec.encodeTransient(transaction);
          // Keys are the decimal user id, so any client hashing the same bytes agrees on the partition.
          const key = String(transaction.user_id);
          bytes += value.length + key.length;
          yield { key, value };
        }
      }
      const { sent, failed, firstError } = await producer.send(topic, messages());
      if (failed) {
        throw new LakestreamError('DELIVERY_FAILED', `${failed} of ${sent} transactions not delivered to ${topic}: ${errorMessage(firstError)}`, {
          cause: firstError,
          retriable: true,
          context: { topic, records: failed },
        });
      }
      return { sent, bytes, refused };
    },
    close: () => producer.close(),
  };
}
