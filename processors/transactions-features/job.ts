import type { ClientContext } from '../../core/context.ts';
import { avroCodec, type AvroCodec } from '../../core/avro.ts';
import { readPartitionToEnd } from '../../core/changelog.ts';
import { processorDeclarations } from '../../core/catalog.ts';
import { createStreamJob, type StreamJob } from '../../core/stream-job.ts';
import type { Transaction } from '../../schemas/transactions.ts';

export interface FeaturesJobOptions {
  /** Stable id of this process among the job's processes: a restart with the same id fences its predecessor at once. */
  instance?: string;
}

/**
 * Counts each user's transactions, exactly once. Every batch (spanning all assigned partitions)
 * is one Kafka transaction that holds the new counts (one record per transaction event, keyed and
 * partitioned like the input), the dead letters and the consumer offsets; nothing is visible to
 * read_committed readers until it commits. The counts live in memory per assigned partition and
 * are rebuilt from the compacted output topic whenever a partition is assigned or a transaction
 * aborts, so a kill -9 loses nothing and counts nothing twice.
 */
export function createFeaturesJob(context: ClientContext, options: FeaturesJobOptions = {}): StreamJob {
  const { catalog, log } = context;
  const declaration = processorDeclarations.transactionsFeatures;
  const name = catalog.group(declaration.name);
  const input = catalog.topic[declaration.input];
  const output = catalog.topic[declaration.output];
  const transactionalId = `${name}-${options.instance ?? '0'}`;
  const counts = new Map<number, Map<number, number>>();
  const stats = { emitted: 0, restored: 0 };
  let codec: AvroCodec | undefined;

  async function restore(partition: number): Promise<Map<number, number>> {
    const state = new Map<number, number>();
    const restoredRecords = await readPartitionToEnd(context.config, output, partition, async (message) => {
      if (!message.key) return;
      const userId = Number(message.key.toString());
      if (message.value === null || message.value === undefined) {
        state.delete(userId);
        return;
      }
      // The registry's decoder, not the current writer schema: records written with an older or
      // newer schema version restore as what they are.
      const pending = context.decode(message.value);
      const { value } = pending instanceof Promise ? await pending : pending;
      state.set(userId, Number(value.total_transactions_count));
    });
    stats.restored += restoredRecords;
    log.info('restored state', { job: name, partition, users: state.size, records: restoredRecords });
    return state;
  }

  return createStreamJob({ name, topic: input, commit: 'transaction', transactionalId }, context, () => ({
    async handle(batches, batchContext) {
      codec ??= await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${output}-value`));
      for (const batch of batches) {
        let state = counts.get(batch.partition);
        if (!state) {
          state = await restore(batch.partition);
          counts.set(batch.partition, state);
        }
        // State is updated in place: if the transaction aborts, `aborted` drops it for a restore.
        for (const record of batch.records) {
          const transaction = record.value as unknown as Transaction;
          const total = (state.get(transaction.user_id) ?? 0) + 1;
          state.set(transaction.user_id, total);
          const produced = batchContext.produce(output, {
            key: String(transaction.user_id),
            partition: batch.partition,
            value: codec.encode({ user_id: transaction.user_id, total_transactions_count: total, event_timestamp_millis: transaction.transaction_timestamp_millis }),
          });
          if (produced) await produced;
        }
        stats.emitted += batch.records.length;
      }
    },
    // Newly assigned or revoked: either way the next batch of a partition restores it.
    assigned: (partitions) => partitions.forEach((p) => counts.delete(p)),
    revoked: async (partitions) => partitions.forEach((p) => counts.delete(p)),
    aborted: (partitions) => partitions.forEach((p) => counts.delete(p)),
    stats: () => ({ ...stats }),
  }));
}
