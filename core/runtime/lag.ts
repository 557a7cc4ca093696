import { metrics } from '../metrics.ts';

interface PartitionFigures {
  ls_offset?: number;
  app_offset?: number;
  committed_offset?: number;
}

export interface PartitionLag {
  partition: number;
  /** Records not read yet; undefined when librdkafka does not know (not assigned, no position). */
  lag?: number;
}

/**
 * Records of each partition not read yet, from librdkafka's statistics JSON: the last stable
 * offset (read_committed) less the position of the application (its committed offset before
 * the first read). How much of what was read is durable is the committed offsets' business
 * (the dashboard's lag).
 */
export function partitionLag(statistics: string, topic: string, assigned: ReadonlySet<number>): PartitionLag[] {
  const parsed = JSON.parse(statistics) as { topics?: Record<string, { partitions?: Record<string, PartitionFigures> }> };
  const lags: PartitionLag[] = [];
  for (const [id, figures] of Object.entries(parsed.topics?.[topic]?.partitions ?? {})) {
    const partition = Number(id);
    // librdkafka's internal UA partition (-1)
    if (partition < 0) continue;
    const app = figures.app_offset ?? -1;
    const committed = figures.committed_offset ?? -1;
    const position = app >= 0 ? app : committed >= 0 ? committed : undefined;
    const end = figures.ls_offset ?? -1;
    lags.push({ partition, ...(assigned.has(partition) && position !== undefined && end >= 0 ? { lag: Math.max(0, end - position) } : {}) });
  }
  return lags;
}

/** Sets (or removes) the consumer lag gauge of each partition from one statistics event. */
export function exportLag(statistics: { message?: string } | string, job: string, topic: string, assigned: ReadonlySet<number>): void {
  const json = typeof statistics === 'string' ? statistics : (statistics.message ?? '{}');
  for (const { partition, lag } of partitionLag(json, topic, assigned)) {
    const labels = { job, topic, partition: String(partition) };
    if (lag === undefined) metrics.consumerLag.remove(labels);
    else metrics.consumerLag.set(labels, lag);
  }
}
