import type { ClientContext } from '../../platform/context.ts';
import { processorDeclarations, transactionWindows } from '../../platform/catalog.ts';
import { LakestreamError } from '../../core/errors.ts';
import { createProcessorJob, type StoreSpec } from '../../core/runtime/processor.ts';
import type { StreamJob } from '../../core/runtime/index.ts';
import { addToTiles, decodeTiles, encodeTiles, expireTiles, isLate, windowColumns, windowsAt, type Tiles } from '../../core/windows.ts';
import type { Transaction } from '../../schemas/transactions.ts';

export interface FeaturesJobOptions {
  /** Stable id of this process among the job's processes: a restart with the same id fences its predecessor at once. */
  instance?: string;
}

/** A user's windowed-feature state: the live tiles, and what the online store orders updates by. */
interface UserWindows {
  tiles: Tiles;
  /** The user's newest transaction on time: the windows are as of it, and expire by it. */
  newest: number;
  /** Transactions applied so far: grows with every update. */
  events: number;
}

const windowFields = windowColumns(transactionWindows, 'amount');

/**
 * Computes each user's transaction features, exactly once: the all-time count and the windowed
 * count and amount (1 h, 24 h, 7 d of event time, docs/decisions/0020). Every batch (spanning
 * all assigned partitions) is one Kafka transaction that holds the new values (one record per
 * transaction event and feature, keyed and partitioned like the input), the dead letters and
 * the consumer offsets; nothing is visible to read_committed readers until it commits. Both are
 * runtime stores: the counts' changelog is their output topic itself, the windows' tiles have
 * their own. A kill -9 loses nothing and counts nothing twice.
 *
 * A transaction older than its partition's stream time by more than the allowed lateness is
 * left out of the windows and dead-lettered with reason `late`; the all-time count still counts
 * it, as it counts every transaction whatever its time.
 */
export function createFeaturesJob(context: ClientContext, options: FeaturesJobOptions = {}): StreamJob {
  const { catalog } = context;
  const declaration = processorDeclarations.transactionsFeatures;
  const name = catalog.group(declaration.name);
  const output = catalog.topic[declaration.stores.counts];
  const windowsOutput = catalog.topic.userTransactionWindows;
  const counts: StoreSpec<number> = {
    changelog: output,
    changelogIsOutput: true,
    encode: (key, total, eventTime) => ({ user_id: Number(key), total_transactions_count: total, event_timestamp_millis: eventTime }),
    decode: (record) => Number(record.total_transactions_count),
  };
  const windows: StoreSpec<UserWindows> = {
    changelog: catalog.topic[declaration.stores.windows],
    encode: (key, state) => ({ user_id: Number(key), newest_event_time: state.newest, events: state.events, tiles: encodeTiles(state.tiles) }),
    decode: (record) => ({ tiles: decodeTiles(record.tiles as number[]), newest: Number(record.newest_event_time), events: Number(record.events) }),
    eventTimeOf: (state) => state.newest,
  };
  const stats = { emitted: 0, late: 0 };
  return createProcessorJob<Transaction, { counts: StoreSpec<number>; windows: StoreSpec<UserWindows> }>(
    { name, input: catalog.topic[declaration.input], instance: options.instance, stores: { counts, windows } },
    context,
    () => ({
      process(transaction, { stores, forward, deadLetter }, record) {
        const key = String(transaction.user_id);
        const time = transaction.transaction_timestamp_millis;
        const total = (stores.counts.get(key) ?? 0) + 1;
        stores.counts.put(key, total, time);
        stats.emitted++;
        // the transaction's position lets a backfill of its day tell whether it counted it already
        const position = { source_partition: record.partition, source_offset: record.offset };
        const counted = forward(output, key, { ...counts.encode(key, total, time), ...position });

        const streamTime = stores.windows.streamTime;
        if (isLate(time, streamTime, transactionWindows)) {
          stats.late++;
          const error = new LakestreamError(
            'RECORD_INVALID',
            `transaction_timestamp_millis ${new Date(time).toISOString()} of user ${key} is ${Math.round((streamTime! - time) / 1000)} s older than its partition's newest (${new Date(streamTime!).toISOString()}), past the allowed lateness of ${transactionWindows.allowedLatenessMs / 1000} s: left out of user_transaction_windows (still counted in total_transactions_count)`,
            { context: { reason: 'late' } },
          );
          return chain(counted, () => deadLetter(record, error));
        }
        let state = stores.windows.get(key);
        if (!state) state = { tiles: new Map(), newest: time, events: 0 };
        addToTiles(state.tiles, time, transaction.amount, transactionWindows);
        state.events++;
        if (time > state.newest) {
          state.newest = time;
          expireTiles(state.tiles, time, transactionWindows);
        }
        stores.windows.put(key, state, time);
        const values: Record<string, unknown> = { user_id: transaction.user_id, windows_as_of: state.newest, events: state.events, ...position };
        const aggregates = windowsAt(state.tiles, state.newest, transactionWindows);
        for (const field of windowFields) values[field.name] = aggregates[field.index]![field.aggregate] ?? null;
        return chain(counted, () => forward(windowsOutput, key, values));
      },
      stats: () => ({ ...stats }),
    }),
  );
}

/** Runs `next` after `first`, staying synchronous when `first` was: no promise per record on the hot path. */
function chain(first: Promise<void> | void, next: () => Promise<void> | void): Promise<void> | void {
  return first instanceof Promise ? first.then(next) : next();
}
