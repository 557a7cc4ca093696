import type { ClientContext } from '../../core/context.ts';
import { avroCodec, type AvroCodec } from '../../core/avro.ts';
import { restoreKeyedState } from '../../core/changelog.ts';
import { processorDeclarations } from '../../core/catalog.ts';
import { createStreamJob, type StreamJob } from '../../core/runtime/index.ts';
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

  /** Rebuilds the counts of `partitions` from the changelog (all at once, one consumer). */
  async function restore(partitions: number[]): Promise<void> {
    const { states, records } = await restoreKeyedState(context, output, partitions, {
      key: Number,
      value: (record) => Number(record.total_transactions_count),
    });
    for (const [partition, state] of states) counts.set(partition, state);
    stats.restored += records;
    log.info('restored state', { job: name, partitions, users: [...states.values()].reduce((n, s) => n + s.size, 0), records });
  }

  return createStreamJob({ name, topic: input, commit: 'transaction', transactionalId }, context, () => ({
    async handle(batches, batchContext) {
      codec ??= await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${output}-value`));
      for (const batch of batches) {
        if (!counts.has(batch.partition)) await restore([batch.partition]);
        const state = counts.get(batch.partition)!;
        // State is updated in place: if the transaction aborts, `aborted` drops it for a restore.
        for (const record of batch.records) {
          const transaction = record.value as unknown as Transaction;
          const total = (state.get(transaction.user_id) ?? 0) + 1;
          state.set(transaction.user_id, total);
          const produced = batchContext.produce(output, {
            key: String(transaction.user_id),
            partition: batch.partition,
            value: codec.encodeTransient({ user_id: transaction.user_id, total_transactions_count: total, event_timestamp_millis: transaction.transaction_timestamp_millis }),
          });
          if (produced) await produced;
        }
        stats.emitted += batch.records.length;
      }
    },
    // State of a newly assigned partition is rebuilt before its first batch; after an abort, the
    // next batch of the partition rebuilds it.
    assigned: (partitions) => restore(partitions),
    revoked: async (partitions) => partitions.forEach((p) => counts.delete(p)),
    aborted: (partitions) => partitions.forEach((p) => counts.delete(p)),
    stats: () => ({ ...stats }),
  }));
}
