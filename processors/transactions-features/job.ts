import type { KafkaJS } from '@confluentinc/kafka-javascript';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { z } from 'zod';
import { avroCodec, createAvroDecoder, type AvroCodec } from '../../core/avro.ts';
import { readPartitionToEnd } from '../../core/changelog.ts';
import type { Config } from '../../core/config.ts';
import { createDeadLetters } from '../../core/dead-letter.ts';
import { LakestreamError, errorMessage } from '../../core/errors.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { createLogger, type Logger } from '../../core/log.ts';
import { createRegistry } from '../../core/registry.ts';
import { validateTransaction } from '../../ingest/transactions/record.ts';

export const featuresJobOptionsSchema = z
  .object({
    name: z.string().default('transactions-ml-features-job').describe('Consumer group, and the stem of the transactional id.'),
    inputTopic: z.string().default('transactions'),
    outputTopic: z.string().default('user-transaction-counts').describe('Compacted changelog and feature stream, co-partitioned with the input.'),
    instance: z.string().default('0').describe('Stable id of this process among the job’s processes: a restart with the same id fences its predecessor at once.'),
  })
  .strict();

export type FeaturesJobOptions = z.input<typeof featuresJobOptionsSchema>;

export interface UserTransactionCount {
  user_id: number;
  total_transactions_count: number;
  event_timestamp_millis: number;
}

export interface FeaturesJob {
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): { processed: number; emitted: number; transactions: number; restored: number; deadLetters: Record<string, number> };
}

/**
 * Counts each user's transactions, exactly once. Every input batch is one Kafka transaction that
 * holds the new counts (one record per transaction event, keyed and partitioned like the input)
 * and the consumer offsets; nothing is visible to read_committed readers until it commits. The
 * counts live in memory per assigned partition and are rebuilt from the compacted output topic
 * whenever a partition is assigned, so a kill -9 loses nothing and counts nothing twice.
 */
export function createFeaturesJob(optionsInput: FeaturesJobOptions, deps: { config: Config; registry?: SchemaRegistry; log?: Logger }): FeaturesJob {
  const options = featuresJobOptionsSchema.parse(optionsInput);
  const log = deps.log ?? createLogger('features-job', { job: options.name });
  const registry = deps.registry ?? createRegistry(deps.config);
  const decode = createAvroDecoder(registry);
  const deadLetters = createDeadLetters(options.name, log);
  const counts = new Map<number, Map<number, number>>();
  const stats = { processed: 0, emitted: 0, transactions: 0, restored: 0 };
  let codec: AvroCodec | undefined;
  let producer: KafkaJS.Producer | undefined;
  let consumer: KafkaJS.Consumer | undefined;
  let stopped: Promise<void> | undefined;

  async function restore(partition: number): Promise<Map<number, number>> {
    const state = new Map<number, number>();
    const restoredRecords = await readPartitionToEnd(deps.config, options.outputTopic, partition, (message) => {
      if (!message.key) return;
      const userId = Number(message.key.toString());
      if (message.value === null || message.value === undefined) {
        state.delete(userId);
        return;
      }
      const value = codec!.type.fromBuffer(message.value.subarray(5)) as UserTransactionCount;
      state.set(userId, Number(value.total_transactions_count));
    });
    stats.restored += restoredRecords;
    log.info('restored state', { partition, users: state.size, records: restoredRecords });
    return state;
  }

  async function handleBatch(batch: KafkaJS.Batch): Promise<void> {
    let state = counts.get(batch.partition);
    if (!state) {
      state = await restore(batch.partition);
      counts.set(batch.partition, state);
    }
    const updates = new Map<number, number>();
    const transaction = await producer!.transaction();
    try {
      const outputs: KafkaJS.Message[] = [];
      for (const message of batch.messages) {
        try {
          const pending = decode(message.value);
          const { value } = pending instanceof Promise ? await pending : pending;
          const record = validateTransaction(value);
          const total = (updates.get(record.user_id) ?? state.get(record.user_id) ?? 0) + 1;
          updates.set(record.user_id, total);
          outputs.push({
            key: String(record.user_id),
            partition: batch.partition,
            value: codec!.encode({ user_id: record.user_id, total_transactions_count: total, event_timestamp_millis: record.transaction_timestamp_millis }),
          });
        } catch (error) {
          if (!(error instanceof LakestreamError) || error.retriable || !['RECORD_UNDECODABLE', 'RECORD_INVALID'].includes(error.code)) throw error;
          await deadLetters.send(transaction, { topic: batch.topic, partition: batch.partition, message }, error);
        }
      }
      if (outputs.length) await transaction.send({ topic: options.outputTopic, messages: outputs });
      const next = String(Number(batch.messages[batch.messages.length - 1]!.offset) + 1);
      await transaction.sendOffsets({ consumer: consumer!, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
      await transaction.commit();
      for (const [userId, total] of updates) state.set(userId, total);
      stats.processed += batch.messages.length;
      stats.emitted += outputs.length;
      stats.transactions++;
    } catch (error) {
      await transaction.abort().catch((cause) => log.warn('abort failed', { error: errorMessage(cause) }));
      // Our in-memory counts may be ahead of what committed: rebuild them from the changelog.
      counts.delete(batch.partition);
      throw error;
    }
  }

  return {
    async start() {
      const schemaId = await registry.getLatestSchemaId(`${options.outputTopic}-value`);
      codec = await avroCodec(registry, schemaId);
      producer = createProducer(deps.config, options.name, { transactionalId: `${options.name}-${options.instance}`, lingerMs: 5 });
      // connecting initialises the transactional id: a predecessor's open transaction is aborted
      await producer.connect();
      consumer = createConsumer(deps.config, options.name, {
        // Each batch is one Kafka transaction, whose commit costs round trips to the
        // coordinator: larger batches amortise it.
        maxBatchSize: 10_000,
        // Revoked or newly assigned: either way the next batch of a partition restores it.
        rebalance: async (_event, assignment) => {
          for (const { partition } of assignment) counts.delete(partition);
        },
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [options.inputTopic] });
      await consumer.run({ eachBatch: ({ batch }) => handleBatch(batch) });
      log.info('started', { input: options.inputTopic, output: options.outputTopic, transactionalId: `${options.name}-${options.instance}` });
    },
    stop() {
      stopped ??= (async () => {
        await consumer?.disconnect();
        await producer?.disconnect();
        log.info('stopped', { ...stats, deadLetters: deadLetters.counts() });
      })();
      return stopped;
    },
    stats: () => ({ ...stats, deadLetters: deadLetters.counts() }),
  };
}
