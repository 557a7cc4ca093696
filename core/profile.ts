/**
 * Two tunings of the same jobs, chosen with LAKESTREAM_PROFILE, instead of one compromise:
 * - `throughput` fetches in large batches and lets the producers linger, so per-batch costs
 *   (a Kafka transaction, a Redis round trip, a commit) are shared by many records;
 * - `latency` returns from a fetch with whatever is there, sends at once and keeps batches
 *   small, so a record reaches Redis within tens of milliseconds.
 * docs/decisions/0006-benchmarks.md has the figures of both.
 */
export type Profile = 'throughput' | 'latency';

export interface ProfileSettings {
  /** Most records one batch hands to a handler (and one transaction holds) while the job keeps up. */
  maxBatchSize: number;
  /** How far batches grow behind a backlog (`core/runtime/batch-size.ts`). */
  backlogBatchSize: number;
  /** How long a poll waits for its first record. */
  pollTimeoutMs: number;
  /** How long a broker may hold a fetch to fill it (librdkafka fetch.wait.max.ms). */
  fetchWaitMaxMs: number;
  /** How much a broker gathers before answering a fetch, within fetchWaitMaxMs (fewer, larger fetches cost the brokers less CPU). */
  fetchMinBytes: number;
  /** Prefetched data per partition (librdkafka queued.max.messages.kbytes). */
  prefetchKbytes: number;
  /** Producer linger.ms. */
  lingerMs: number;
}

const profiles: Record<Profile, ProfileSettings> = {
  throughput: { maxBatchSize: 20_000, backlogBatchSize: 20_000, pollTimeoutMs: 200, fetchWaitMaxMs: 100, fetchMinBytes: 256 * 1024, prefetchKbytes: 4 * 1024, lingerMs: 5 },
  latency: { maxBatchSize: 2_000, backlogBatchSize: 20_000, pollTimeoutMs: 50, fetchWaitMaxMs: 5, fetchMinBytes: 1, prefetchKbytes: 4 * 1024, lingerMs: 0 },
};

export function profileSettings(profile: Profile): ProfileSettings {
  return profiles[profile];
}

/** The fetch settings of a stream job's consumer under `profile`: the jobs' and their benchmark's. */
export function consumerFetchSettings(settings: ProfileSettings): Record<string, string | number> {
  return {
    'isolation.level': 'read_committed',
    // bounded prefetch: a paused or slow job holds little memory
    'queued.max.messages.kbytes': settings.prefetchKbytes,
    'fetch.wait.max.ms': settings.fetchWaitMaxMs,
    'fetch.min.bytes': settings.fetchMinBytes,
  };
}
