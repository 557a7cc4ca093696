import type { ClientContext } from '../../platform/context.ts';
import { processorDeclarations } from '../../platform/catalog.ts';
import { createProcessorJob, type StoreSpec } from '../../core/runtime/processor.ts';
import type { StreamJob } from '../../core/runtime/index.ts';
import type { Transaction } from '../../schemas/transactions.ts';

export interface FeaturesJobOptions {
  /** Stable id of this process among the job's processes: a restart with the same id fences its predecessor at once. */
  instance?: string;
}

/**
 * Counts each user's transactions, exactly once. Every batch (spanning all assigned partitions)
 * is one Kafka transaction that holds the new counts (one record per transaction event, keyed and
 * partitioned like the input), the dead letters and the consumer offsets; nothing is visible to
 * read_committed readers until it commits. The counts are a runtime store whose changelog is the
 * compacted output topic itself, so a kill -9 loses nothing and counts nothing twice.
 */
export function createFeaturesJob(context: ClientContext, options: FeaturesJobOptions = {}): StreamJob {
  const { catalog } = context;
  const declaration = processorDeclarations.transactionsFeatures;
  const name = catalog.group(declaration.name);
  const output = catalog.topic[declaration.stores.counts];
  const counts: StoreSpec<number> = {
    changelog: output,
    changelogIsOutput: true,
    encode: (key, total, eventTime) => ({ user_id: Number(key), total_transactions_count: total, event_timestamp_millis: eventTime }),
    decode: (record) => Number(record.total_transactions_count),
  };
  const stats = { emitted: 0 };
  return createProcessorJob<Transaction, { counts: StoreSpec<number> }>(
    { name, input: catalog.topic[declaration.input], instance: options.instance, stores: { counts } },
    context,
    () => ({
      process(transaction, { stores, forward }, record) {
        const key = String(transaction.user_id);
        const total = (stores.counts.get(key) ?? 0) + 1;
        stores.counts.put(key, total, transaction.transaction_timestamp_millis);
        stats.emitted++;
        // the transaction's position lets a backfill of its day tell whether it counted it already
        return forward(output, key, { ...counts.encode(key, total, transaction.transaction_timestamp_millis), source_partition: record.partition, source_offset: record.offset });
      },
      stats: () => ({ ...stats }),
    }),
  );
}
