import type { ResolvedFeature } from '../../platform/catalog.ts';
import type { ClientContext } from '../../platform/context.ts';
import { LakestreamError, errorMessage } from '../../core/errors.ts';
import { metrics, secondsSince } from '../../core/metrics.ts';
import { createStreamJob, type StreamJob } from '../../core/runtime/index.ts';
import { writeFeatures } from '../../features/online-store.ts';

/**
 * Keeps `feat:<entity>:<id>` in Redis equal to the latest committed update of each entity of a
 * feature. Reads with read_committed (aborted updates never reach serving), writes each batch as
 * one pipelined round trip of guarded absolute writes, then the runtime commits the offsets: a
 * replay after a crash rewrites the same values, which the guard turns into no-ops. Records that
 * cannot be decoded go to the feature topic's dead-letter topic, like every job's.
 */
export function createRedisSink(feature: ResolvedFeature, context: ClientContext, identity: { instance?: string } = {}): StreamJob {
  if (!feature.redisSinkGroup) throw new LakestreamError('USAGE', `feature ${feature.id} is not served from Redis`);
  const redis = context.redis();
  const stats = { applied: 0 };
  return createStreamJob({ name: feature.redisSinkGroup, topic: feature.topic, commit: 'after-batch', instance: identity.instance }, context, () => ({
    async handle(batches) {
      // Within a batch only each entity's last update matters.
      const latest = new Map<unknown, Record<string, unknown>>();
      for (const batch of batches) for (const record of batch.records) latest.set(record.value[feature.entityKey], record.value);
      try {
        const startedAt = performance.now();
        stats.applied += await writeFeatures(redis, feature, [...latest.values()]);
        metrics.redisWriteDuration.observe({ job: feature.redisSinkGroup! }, secondsSince(startedAt));
        metrics.recordsOut.inc({ job: feature.redisSinkGroup!, output: `redis:${feature.id}` }, latest.size);
      } catch (cause) {
        // Redis being away is transient: the runtime retries the batch with backoff.
        throw new LakestreamError('REDIS_ERROR', `writing ${latest.size} ${feature.entity} features to Redis failed: ${errorMessage(cause)}`, { cause, retriable: true });
      }
    },
    stats: () => ({ ...stats }),
  }));
}
