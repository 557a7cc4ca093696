import { catalog, type TopicSpec } from '../platform/catalog.ts';

/**
 * The topics `pnpm run infra:apply` manages come from the catalog (platform/catalog.ts); this module
 * holds what a cluster of a given size makes of their replication settings. Partition counts and
 * replication factors are reported as drift, never changed by apply: adding partitions to a keyed
 * topic would move keys, and a replication change needs a reassignment.
 */
export type { TopicSpec };

/** The declared topics of a namespaced pipeline, dead-letter topics included. */
export function topicsFor(namespace: string): TopicSpec[] {
  return catalog(namespace).topicSpecs;
}

/** Replication settings a cluster of `brokers` can honour. */
export function effectiveReplication(spec: TopicSpec, brokers: number): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = Math.min(spec.replicationFactor, brokers);
  return { replicationFactor, minInsyncReplicas: Math.min(spec.minInsyncReplicas, replicationFactor === 1 ? 1 : replicationFactor - 1) };
}

export function desiredConfigs(spec: TopicSpec, brokers: number): Record<string, string> {
  return {
    'cleanup.policy': spec.cleanupPolicy,
    'retention.ms': String(spec.retentionMs),
    'min.insync.replicas': String(effectiveReplication(spec, brokers).minInsyncReplicas),
    ...(spec.minCompactionLagMs !== undefined ? { 'min.compaction.lag.ms': String(spec.minCompactionLagMs) } : {}),
  };
}
