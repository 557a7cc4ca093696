import { LakestreamError, errorMessage, isRetriable } from './errors.ts';
import type { KafkaConnection } from './kafka.ts';
import { createTransactionalProducer, type DeliveredAt, type OutgoingMessage, type TransactionalProducer, type TransactionalTuning } from './kafka-producer.ts';
import type { Logger } from './log.ts';
import { createTransactionManager, TransactionOutcomeUnknown } from './runtime/transactions.ts';

export interface GroupCommitOptions extends Pick<TransactionalTuning, 'lingerMs' | 'compression' | 'trackBrokers'> {
  transactionalId: string;
  /** Where each record was stored, for callers that answer with positions (one JS call per record). */
  positions?: boolean;
  /** How long a send may keep retrying aborted transactions before it fails (default 120 s). */
  deliveryTimeoutMs?: number;
  log: Logger;
}

export interface GroupCommitter {
  /**
   * Resolves once `messages` are committed, visible to read_committed readers exactly once, with
   * each one's position (with `positions`). Rejects with DELIVERY_FAILED if every transaction
   * that carried them was aborted until the delivery timeout (nothing of them visible), or, not
   * retriable and with context `outcome: 'unknown'`, when a commit's outcome cannot be known.
   */
  send(topic: string, messages: OutgoingMessage[]): Promise<Array<DeliveredAt | undefined>>;
  /** Transactions aborted (a broker or the coordinator failing) and sent again so far. */
  readonly retried: number;
  /** With `trackBrokers`: whether the current producer has a broker connected (`BatchProducer.brokersUp`). */
  brokersUp(): boolean;
  close(): Promise<void>;
}

/** An error of `send` that leaves the records' fate unknown: they may be in Kafka, or not. */
export const isOutcomeUnknown = (error: unknown): boolean => error instanceof LakestreamError && error.context.outcome === 'unknown';

/**
 * Kafka transactions for producers that are not consume-transform-produce jobs (the ingest
 * producers, the gateway). librdkafka's idempotent producer bumps its epoch after some produce
 * errors (a skipped sequence in a leader change, a timed-out message) and then renumbers records
 * that may already be stored, which writes them twice (confluentinc/librdkafka#4953; 0018). In a
 * transaction that bump aborts the transaction instead, and the aborted copies are never read.
 *
 * Sends arriving while a commit runs share the next transaction (a group commit), so the cost is
 * one commit per round trip, not per send. The runtime's state machine
 * (`core/runtime/transactions.ts`) resumes retriable commits, replaces a fenced or fatal
 * producer, and reports a commit whose outcome it cannot know.
 */
export async function createGroupCommitter(config: KafkaConnection, options: GroupCommitOptions): Promise<GroupCommitter> {
  const { transactionalId, log } = options;
  let current: TransactionalProducer | undefined;
  const manager = createTransactionManager({
    transactionalId,
    newProducer: async () =>
      (current = await createTransactionalProducer(config, transactionalId, {
        lingerMs: options.lingerMs,
        compression: options.compression,
        deliveryReports: options.positions,
        trackBrokers: options.trackBrokers,
      })),
    log,
  });
  await manager.start();
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? 120_000;

  interface Queued {
    topic: string;
    messages: OutgoingMessage[];
    positions: Array<DeliveredAt | undefined>;
    resolve(positions: Array<DeliveredAt | undefined>): void;
    reject(error: unknown): void;
  }
  const queue: Queued[] = [];
  let committing: Promise<void> | undefined;
  let retried = 0;

  async function produceAll(producer: TransactionalProducer, group: Queued[], reported: { outstanding: number; all?: () => void }): Promise<void> {
    for (const queued of group) {
      queued.positions = [];
      for (let index = 0; index < queued.messages.length; index++) {
        if (!options.positions) {
          await producer.produce(queued.topic, queued.messages[index]!);
          continue;
        }
        reported.outstanding++;
        await producer.produce(queued.topic, queued.messages[index]!, (_error, position) => {
          queued.positions[index] = position;
          if (--reported.outstanding === 0) reported.all?.();
        });
      }
    }
  }

  /** Delivery reports are served by the poll loop, possibly after the commit's own callback. */
  async function allReported(reported: { outstanding: number; all?: () => void }): Promise<void> {
    if (!reported.outstanding) return;
    await Promise.race([new Promise<void>((resolve) => (reported.all = resolve)), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  }

  async function commitGroup(group: Queued[]): Promise<void> {
    const deadline = performance.now() + deliveryTimeoutMs;
    const records = group.reduce((sum, queued) => sum + queued.messages.length, 0);
    const topics = [...new Set(group.map((queued) => queued.topic))].join(', ');
    for (let attempt = 1; ; attempt++) {
      const reported = { outstanding: 0 } as { outstanding: number; all?: () => void };
      try {
        await manager.run({ work: (producer) => produceAll(producer, group, reported) });
        await allReported(reported);
        return;
      } catch (error) {
        if (error instanceof TransactionOutcomeUnknown) {
          // the successor producer settles it; whether these records are in the topic is then for
          // the caller to look up, never to guess by sending them again
          await manager.settle().catch(() => {});
          throw new LakestreamError('DELIVERY_FAILED', `${records} records may or may not have been written to ${topics}: ${errorMessage(error)}`, {
            cause: error,
            retriable: false,
            context: { topic: topics, records, outcome: 'unknown' },
          });
        }
        if (!isRetriable(error) || performance.now() > deadline) {
          throw new LakestreamError('DELIVERY_FAILED', `${records} records not delivered to ${topics} after ${attempt} transactions: ${errorMessage(error)}`, {
            cause: error,
            retriable: isRetriable(error),
            context: { topic: topics, records },
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
        for (const queued of group) queued.resolve(queued.positions);
      } catch (error) {
        for (const queued of group) queued.reject(error);
      }
    }
    committing = undefined;
  }

  return {
    get retried() {
      return retried;
    },
    brokersUp: () => current?.brokersUp() ?? true,
    send(topic, messages) {
      return new Promise((resolve, reject) => {
        queue.push({ topic, messages, positions: [], resolve, reject });
        committing ??= commitQueued();
      });
    },
    async close() {
      await committing;
      await manager.close();
    },
  };
}
