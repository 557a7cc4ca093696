import kafkaJavascript, { type KafkaConsumer } from '@confluentinc/kafka-javascript';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { metrics } from '../metrics.ts';
import type { PositionTracker } from './positions.ts';
import type { StreamHandler } from './types.ts';

const ASSIGN = kafkaJavascript.CODES.ERRORS.ERR__ASSIGN_PARTITIONS;
const REVOKE = kafkaJavascript.CODES.ERRORS.ERR__REVOKE_PARTITIONS;

export interface RebalanceDeps {
  jobName: string;
  log: Logger;
  positions: PositionTracker;
  /** The partitions assigned now, shared with the lag export and the job's seeks. */
  assigned: Set<number>;
  handler: () => StreamHandler;
  /** Runs the handler's restore on assignment, retried while the cluster settles. */
  restore: (partitions: number[]) => Promise<void>;
  /** Tells the position tracker where the partitions resume (committed offsets, or a log start past them). */
  expectCommitted: (partitions: number[]) => Promise<void>;
  /** stop() already let the handler finish every partition. */
  leaving: () => boolean;
}

export interface RebalanceQueue {
  /** librdkafka's rebalance_cb: assigns at once, queues the handler's part for the loop. */
  onRebalance(this: KafkaConsumer, err: { code: number }, assignment: Array<{ topic: string; partition: number }>): void;
  /** Runs the queued assignments and revocations in order (between batches). */
  apply(consumer: KafkaConsumer): Promise<void>;
  revokePending(): boolean;
}

/**
 * Rebalances happen on librdkafka's thread, batches on the loop: assignments are applied before
 * the batch that came with them (the handler restores state before it sees records), and
 * revocations after it, with `unassign()` deferred until the handler has handed the partitions
 * over (librdkafka waits for it).
 */
export function createRebalanceQueue(deps: RebalanceDeps): RebalanceQueue {
  const { log, positions, assigned } = deps;
  const job = { job: deps.jobName };
  const pending: Array<{ kind: 'assign' | 'revoke'; partitions: number[] }> = [];
  return {
    onRebalance(err, assignment) {
      const partitions = assignment.map((tp) => tp.partition);
      // cleared now, not when the loop gets to the event: a fetch may come first
      positions.forget(partitions);
      if (err.code === ASSIGN) {
        this.assign(assignment);
        for (const p of partitions) assigned.add(p);
        pending.push({ kind: 'assign', partitions });
        metrics.assignedPartitions.set(job, assigned.size);
      } else if (err.code === REVOKE) {
        if (deps.leaving()) {
          this.unassign();
          assigned.clear();
        } else {
          pending.push({ kind: 'revoke', partitions });
        }
      } else {
        log.error('rebalance error', { code: err.code });
      }
    },
    async apply(consumer) {
      while (pending.length) {
        const event = pending.shift()!;
        if (event.kind === 'assign') {
          positions.forget(event.partitions);
          log.info('partitions assigned', { partitions: event.partitions });
          await deps.restore(event.partitions);
          await deps.expectCommitted(event.partitions);
        } else {
          log.info('partitions revoked', { partitions: event.partitions });
          try {
            await deps.handler().revoked?.(event.partitions);
          } catch (error) {
            // The next owner starts from what is committed; nothing is lost, some work is redone.
            log.warn('handing over revoked partitions failed', { partitions: event.partitions, error: errorMessage(error) });
          }
          consumer.unassign();
          for (const p of event.partitions) assigned.delete(p);
          metrics.assignedPartitions.set(job, assigned.size);
        }
      }
    },
    revokePending: () => pending.some((event) => event.kind === 'revoke'),
  };
}
