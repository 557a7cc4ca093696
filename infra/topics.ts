/**
 * The topics of the platform, declared once. `pnpm run infra:apply` creates what is missing, fixes
 * config drift, and reports drift it must not fix by itself (partition counts: adding partitions
 * to a keyed topic would move keys; replication factor: needs a reassignment).
 */
export interface TopicSpec {
  name: string;
  partitions: number;
  /** Capped at the broker count, so a single-broker stack gets RF 1. */
  replicationFactor: number;
  /** Capped at the effective replication factor. */
  minInsyncReplicas: number;
  retentionMs: number;
  cleanupPolicy: 'delete' | 'compact' | 'compact,delete';
  /** Avro schema in schemas/, registered under `<topic>-value`. */
  valueSchema?: string;
  description: string;
}

const DAY = 24 * 60 * 60 * 1000;

export const topics: TopicSpec[] = [
  {
    name: 'transactions',
    partitions: 6,
    replicationFactor: 3,
    minInsyncReplicas: 2,
    retentionMs: 1 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'transactions-value.avsc',
    description: 'Money movements keyed by user_id; the lake keeps them beyond the one-day retention.',
  },
  {
    name: 'user-transaction-counts',
    partitions: 6,
    replicationFactor: 3,
    minInsyncReplicas: 2,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'user-transaction-counts-value.avsc',
    description: 'Per-user running transaction count keyed by user_id, co-partitioned with transactions: the features job changelog.',
  },
  {
    name: 'dlq.transactions',
    partitions: 1,
    replicationFactor: 3,
    minInsyncReplicas: 2,
    retentionMs: 14 * DAY,
    cleanupPolicy: 'delete',
    description: 'Records of transactions that could not be decoded or validated, with the reason in headers.',
  },
];

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
  };
}

/**
 * The declared topics of a namespaced pipeline (see pipeline/jobs.ts): `<ns>.transactions`,
 * `dlq.<ns>.transactions`, … The empty namespace is production.
 */
export function topicsFor(namespace: string): TopicSpec[] {
  if (!namespace) return topics;
  return topics.map((spec) => ({
    ...spec,
    name: spec.name.startsWith('dlq.') ? `dlq.${namespace}.${spec.name.slice(4)}` : `${namespace}.${spec.name}`,
  }));
}
