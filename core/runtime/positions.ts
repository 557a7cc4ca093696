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

/** Offsets `[from, to)` of a partition that were deleted (retention, DeleteRecords) before the job read them. */
export interface DeletedUnread {
  partition: number;
  from: number;
  to: number;
}

/**
 * The last offset read of each assigned partition. Within an assignment offsets only grow, but
 * for the runtime's own seeks (told through `seeked`); one that goes back means librdkafka reset
 * the position: the topic was deleted and recreated (or truncated) under the job. Skipping or
 * re-reading would be silent, so the job stops and says so.
 *
 * Offsets that jump forward are normal (transaction markers, aborted transactions, compaction),
 * unless the partition's log now starts past the offset the job was to read next: then retention
 * deleted records before the job got to them, and librdkafka's auto.offset.reset moved on
 * without a word. `check` returns those ranges for the job to log and count; where the job was
 * to start an assignment is what its group committed (`resumeAt`).
 */
export class PositionTracker {
  private readonly last = new Map<number, number>();
  private readonly expected = new Map<number, number>();
  /** The end of what was already reported deleted, so a seek back below it (the lake sink's) does not count it twice. */
  private readonly reportedTo = new Map<number, number>();

  constructor(private readonly topic: string) {}

  /**
   * Records the offsets of a fetch; throws TOPIC_RESET if a partition went back. `logStart` is
   * the partition's first offset as of the fetch (librdkafka's cached low watermark, updated by
   * every fetch response), asked only when offsets jump.
   */
  check(messages: ReadonlyArray<{ partition: number; offset: number }>, logStart: (partition: number) => number | undefined = () => undefined): DeletedUnread[] {
    const wentBack = new Map<number, { from: number; to: number }>();
    const deleted: DeletedUnread[] = [];
    for (const { partition, offset } of messages) {
      const last = this.last.get(partition);
      if (last !== undefined && offset <= last && !wentBack.has(partition)) wentBack.set(partition, { from: last, to: offset });
      const next = last !== undefined ? last + 1 : this.expected.get(partition);
      // only a jump costs more than the map lookup above: records in sequence are the hot path
      if (next !== undefined && offset > next) {
        const from = Math.max(next, this.reportedTo.get(partition) ?? next);
        const start = offset > from ? logStart(partition) : undefined;
        if (start !== undefined && start > from) {
          const range = { partition, from, to: Math.min(start, offset) };
          deleted.push(range);
          this.reportedTo.set(partition, range.to);
        }
      }
      if (last === undefined) this.expected.delete(partition);
      this.last.set(partition, offset);
    }
    if (wentBack.size) throw topicReset(this.topic, [...wentBack].map(([partition, { from, to }]) => `partition ${partition} from offset ${from} back to ${to}`));
    return deleted;
  }

  /** A seek of ours: the next record read of `partition` is `nextOffset`, and that is no reset. */
  seeked(partition: number, nextOffset: number): void {
    this.last.set(partition, nextOffset - 1);
  }

  /**
   * Where a newly assigned partition resumes: its group's committed offset, or the log start if
   * that is past it, which is returned as deleted unread (unless a seek of ours says otherwise).
   */
  resumeAt(partition: number, committed: number, logStart: number): DeletedUnread | undefined {
    const resume = Math.max(committed, logStart);
    if (!this.last.has(partition)) this.expected.set(partition, resume);
    if (logStart <= committed) return undefined;
    this.reportedTo.set(partition, logStart);
    return { partition, from: committed, to: logStart };
  }

  /** Offsets read before a rebalance say nothing about the next assignment's. */
  forget(partitions: Iterable<number>): void {
    for (const partition of partitions) {
      this.last.delete(partition);
      this.expected.delete(partition);
      this.reportedTo.delete(partition);
    }
  }
}
