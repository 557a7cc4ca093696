import { LakestreamError } from '../errors.ts';

/**
 * A topic whose offsets no longer match what a job has read or stored: deleted and recreated, or
 * truncated. Not retriable: the operator decides (docs/decisions/0012-topic-recreated.md).
 */
export function topicReset(topic: string, what: string[]): LakestreamError {
  return new LakestreamError(
    'TOPIC_RESET',
    `topic ${topic} was deleted and recreated or truncated under this job (${what.join('; ')}); it stops rather than skip or re-read records. If the new topic is meant to be archived from its start, stop its jobs and run \`pnpm run sink:reset -- <job>\` (docs/decisions/0012-topic-recreated.md)`,
    { context: { topic } },
  );
}

/**
 * The last offset read of each assigned partition. Within an assignment offsets only grow, but
 * for the runtime's own seeks (told through `seeked`); one that goes back means librdkafka reset
 * the position: the topic was deleted and recreated (or truncated) under the job. Skipping or
 * re-reading would be silent, so the job stops and says so.
 */
export class PositionTracker {
  private readonly last = new Map<number, number>();

  constructor(private readonly topic: string) {}

  /** Records the offsets of a fetch; throws TOPIC_RESET if a partition went back. */
  check(messages: ReadonlyArray<{ partition: number; offset: number }>): void {
    const wentBack = new Map<number, { from: number; to: number }>();
    for (const { partition, offset } of messages) {
      const last = this.last.get(partition);
      if (last !== undefined && offset <= last && !wentBack.has(partition)) wentBack.set(partition, { from: last, to: offset });
      this.last.set(partition, offset);
    }
    if (wentBack.size) throw topicReset(this.topic, [...wentBack].map(([partition, { from, to }]) => `partition ${partition} from offset ${from} back to ${to}`));
  }

  /** A seek of ours: the next record read of `partition` is `nextOffset`, and that is no reset. */
  seeked(partition: number, nextOffset: number): void {
    this.last.set(partition, nextOffset - 1);
  }

  /** Offsets read before a rebalance say nothing about the next assignment's. */
  forget(partitions: Iterable<number>): void {
    for (const partition of partitions) this.last.delete(partition);
  }
}
