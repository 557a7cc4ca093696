import { validateOrder } from '../schemas/orders.ts';
import { validateProduct } from '../schemas/products.ts';
import { validateShopEvent } from '../schemas/shop-events.ts';
import { validateTransaction } from '../schemas/transactions.ts';
import { checkDefinition, windowColumns, type WindowDefinition } from '../core/windows.ts';

/**
 * Everything the platform names, declared once: topics (each with its dead-letter topic),
 * the jobs and their consumer groups, lake tables, features with their online-store keys, and
 * the object-store roots of sink state, manifests and locks.
 *
 * Everything else derives from here: `infra:apply` creates these topics, `pnpm run pipeline`
 * runs a lake sink per table and a Redis sink per online feature, `pnpm run sql` opens a view per
 * table, backfill and compaction find tables and sink state here, and tests isolate a whole
 * pipeline by resolving the catalog under a namespace. A new table, topic or feature is one entry
 * below (plus its Avro schema in schemas/ and, for a job, its handler).
 */

const MINUTE = 60 * 1000;
const DAY = 24 * 60 * MINUTE;

/**
 * How long a compacted topic that a lake table archives keeps every record uncompacted
 * (`min.compaction.lag.ms`): a lake sink further behind than this would find older values of a
 * key compacted away, history lost without an error. One day, the retention of the shortest
 * source topic (transactions): a sink a day behind loses that input anyway. The price is the
 * restore of the job whose changelog it is, which reads up to a day of updates per key
 * (docs/decisions/0017-runtime-under-faults.md). Changelogs nothing archives compact at once.
 */
export const ARCHIVED_COMPACTION_LAG_MS = DAY;

export interface TopicDeclaration {
  name: string;
  /** The record field whose value is the message key (so all records of one key share a partition). */
  key: string;
  partitions: number;
  /** Capped at the broker count, so a single-broker stack gets RF 1. */
  replicationFactor: number;
  /** Capped below the effective replication factor. */
  minInsyncReplicas: number;
  retentionMs: number;
  cleanupPolicy: 'delete' | 'compact' | 'compact,delete';
  /** Avro schema file in schemas/, registered under `<topic>-value`. */
  valueSchema: string;
  /** Business rules every reader applies after decoding: throws RECORD_INVALID to dead-letter a record. */
  rules?: (record: Record<string, unknown>) => void;
  /** Clients may publish to it through the HTTP gateway (`POST /v1/topics/<name>/records`). */
  gateway?: boolean;
  description: string;
}

export interface TableDeclaration {
  /** DuckDB view name in `pnpm run sql`. */
  view: string;
  /** Key prefix under the lake bucket. */
  path: string;
  /** The topic it archives (a key of `topics`). */
  topic: TopicId;
  /** Field (epoch ms) whose UTC date and hour partition the table (`dt=…/hour=…`). */
  eventTimeField: string;
  /** The lake sink job (and consumer group) that writes it. */
  sink: string;
  /**
   * For a table derived from another topic: the fields holding the Kafka position of the input
   * record a row was computed from. A backfill that recomputed a day from the archive records in
   * the table how far the archive went; stream rows of inputs below that are superseded.
   */
  sourcePosition?: { partition: string; offset: string };
  /**
   * Rows carry the Kafka partition and offset they were read at (`_kafka_partition`,
   * `_kafka_offset`): a backfill then replays the topic's arrival order, which the windowed
   * features' lateness depends on (docs/decisions/0020).
   */
  kafkaPosition?: boolean;
}

export interface FeatureDeclaration {
  /** The entity the feature describes; keys in Redis are `feat:<entity>:<id>` (or `feat:<redisKey>:<id>`). */
  entity: string;
  /** The key's middle part when another feature of the entity already has `feat:<entity>:` (default: the entity). */
  redisKey?: string;
  /** The record field identifying the entity. */
  entityKey: string;
  /** Feature values, by record field, with their Avro types. */
  fields: Record<string, 'int' | 'long' | 'double' | 'string'>;
  /** Record field with the event time (epoch ms) the values are as of; stored as `updated_at`. */
  eventTimeField: string;
  /**
   * A field that only grows for one entity: the online store applies an update only if it is
   * greater than the stored one, so a replayed or reordered older update never wins.
   */
  monotonicField: string;
  /** The compacted changelog topic that carries every update. */
  topic: TopicId;
  /** The lake table of the feature's history. */
  table: TableId;
  /** The Redis sink job (and consumer group), if the feature is served online. */
  redisSink?: string;
  /** Redis keeps an entity's hash this long after its last update (none: for ever). */
  ttlSeconds?: number;
}

/** Six partitions (keys spread over up to six consumers), three replicas, two of them in sync for a write. */
const sixPartitionsReplicated = { partitions: 6, replicationFactor: 3, minInsyncReplicas: 2 } as const;

export const topicDeclarations = {
  transactions: {
    name: 'transactions',
    key: 'user_id',
    ...sixPartitionsReplicated,
    retentionMs: 1 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'transactions-value.avsc',
    rules: (record) => void validateTransaction(record),
    gateway: true,
    description: 'Money movements keyed by user_id; the lake keeps them beyond the one-day retention.',
  },
  userTransactionCounts: {
    name: 'user-transaction-counts',
    key: 'user_id',
    ...sixPartitionsReplicated,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'user-transaction-counts-value.avsc',
    description: 'Per-user running transaction count keyed by user_id, co-partitioned with transactions: the features job changelog.',
  },
  userTransactionWindows: {
    name: 'user-transaction-windows',
    key: 'user_id',
    ...sixPartitionsReplicated,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'user-transaction-windows-value.avsc',
    description: "Per-user transaction count and amount over 1 h, 24 h and 7 d of event time, keyed by user_id, co-partitioned with transactions: one update per transaction on time.",
  },
  transactionWindowsState: {
    name: 'transaction-windows-state',
    key: 'user_id',
    ...sixPartitionsReplicated,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'transaction-windows-state-value.avsc',
    description: "The features job's per-user window tiles, co-partitioned with transactions: its changelog.",
  },
  shopEvents: {
    name: 'shop-events',
    key: 'user_session',
    ...sixPartitionsReplicated,
    retentionMs: 7 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'shop-events-value.avsc',
    rules: (record) => void validateShopEvent(record),
    gateway: true,
    description: 'Click events of the web shop keyed by user_session: all events of a session in one partition, in order.',
  },
  sessionPredictions: {
    name: 'session-predictions',
    key: 'user_session',
    ...sixPartitionsReplicated,
    retentionMs: 7 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'session-predictions-value.avsc',
    description: 'Purchase probabilities of shop sessions as of their events, and their purchases, co-partitioned with shop-events.',
  },
  sessionState: {
    name: 'session-scorer-state',
    key: 'user_session',
    ...sixPartitionsReplicated,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'session-state-value.avsc',
    description: "The session scorer's per-session state, co-partitioned with shop-events: its changelog.",
  },
  promoActions: {
    name: 'promo-actions',
    key: 'user_session',
    ...sixPartitionsReplicated,
    retentionMs: 7 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'promo-actions-value.avsc',
    description: 'Discount offers to undecided shop sessions and the purchases of scored sessions with their money, co-partitioned with session-predictions.',
  },
  promoEconomics: {
    name: 'promo-economics',
    key: 'shard',
    ...sixPartitionsReplicated,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'promo-economics-value.avsc',
    description: "The promo job's running totals per partition of session-predictions (key p<partition>, in that partition): its changelog and the online summary.",
  },
  promoState: {
    name: 'promo-state',
    key: 'user_session',
    ...sixPartitionsReplicated,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'promo-state-value.avsc',
    description: "The promo job's per-session state (offered, converted), co-partitioned with session-predictions: its changelog.",
  },
  orders: {
    name: 'orders',
    key: 'user_id',
    ...sixPartitionsReplicated,
    retentionMs: 7 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'orders-value.avsc',
    rules: (record) => void validateOrder(record),
    gateway: true,
    description: "Orders placed through the HTTP gateway (its order page), keyed by user_id.",
  },
  inputProducts: {
    name: 'input-products',
    key: 'product_id',
    ...sixPartitionsReplicated,
    retentionMs: 7 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'input-products-value.avsc',
    rules: (record) => void validateProduct(record),
    gateway: true,
    description: 'Products as shops publish them, keyed by product_id; the product filter reads them.',
  },
  products: {
    name: 'products',
    key: 'product_id',
    ...sixPartitionsReplicated,
    retentionMs: -1,
    cleanupPolicy: 'compact',
    valueSchema: 'products-value.avsc',
    description: 'Products allowed for sale: input-products without the denylisted ones, co-partitioned with it (the latest version of each product).',
  },
  blockedProducts: {
    name: 'blocked-products',
    key: 'product_id',
    ...sixPartitionsReplicated,
    retentionMs: 7 * DAY,
    cleanupPolicy: 'delete',
    valueSchema: 'blocked-products-value.avsc',
    description: 'Products the product filter held back, each with the denylist reason, co-partitioned with input-products.',
  },
} satisfies Record<string, TopicDeclaration>;

export type TopicId = keyof typeof topicDeclarations;

export const tableDeclarations = {
  transactions: {
    view: 'transactions',
    path: 'transactions',
    topic: 'transactions',
    eventTimeField: 'transaction_timestamp_millis',
    sink: 'transactions-job-backup',
    kafkaPosition: true,
  },
  userTransactionCounts: {
    view: 'user_transaction_counts',
    path: 'features/user_transaction_counts',
    topic: 'userTransactionCounts',
    eventTimeField: 'event_timestamp_millis',
    sink: 'user-transaction-counts-lake-sink',
    sourcePosition: { partition: 'source_partition', offset: 'source_offset' },
  },
  userTransactionWindows: {
    view: 'user_transaction_windows',
    path: 'features/user_transaction_windows',
    topic: 'userTransactionWindows',
    eventTimeField: 'windows_as_of',
    sink: 'user-transaction-windows-lake-sink',
    sourcePosition: { partition: 'source_partition', offset: 'source_offset' },
  },
  shopEvents: {
    view: 'shop_events',
    path: 'shop_events',
    topic: 'shopEvents',
    eventTimeField: 'event_time',
    sink: 'shop-events-lake-sink',
  },
  sessionPredictions: {
    view: 'session_predictions',
    path: 'predictions',
    topic: 'sessionPredictions',
    eventTimeField: 'event_time',
    sink: 'session-predictions-lake-sink',
  },
  promoActions: {
    view: 'promo_actions',
    path: 'promo_actions',
    topic: 'promoActions',
    eventTimeField: 'event_time',
    sink: 'promo-actions-lake-sink',
  },
  promoEconomics: {
    view: 'promo_economics',
    path: 'promo_economics',
    topic: 'promoEconomics',
    eventTimeField: 'event_time',
    sink: 'promo-economics-lake-sink',
  },
  orders: {
    view: 'orders',
    path: 'orders',
    topic: 'orders',
    eventTimeField: 'order_time',
    sink: 'orders-lake-sink',
  },
  blockedProducts: {
    view: 'blocked_products',
    path: 'blocked_products',
    topic: 'blockedProducts',
    eventTimeField: 'blocked_at',
    sink: 'blocked-products-lake-sink',
  },
} satisfies Record<string, TableDeclaration>;

export type TableId = keyof typeof tableDeclarations;

/**
 * The windowed features of each user's transactions (docs/decisions/0020): count and amount
 * sum, min and max over sliding windows of event time, summed from 5-minute tiles. The stream
 * job and the backfill's SQL both compute them from this one definition (core/windows.ts).
 */
export const transactionWindows: WindowDefinition = checkDefinition(
  {
    tileMs: 5 * MINUTE,
    windowsMs: [60 * MINUTE, DAY, 7 * DAY],
    // a transaction this much older than the newest of its partition still counts; older ones
    // go to the dead-letter topic (they still count in total_transactions_count)
    allowedLatenessMs: 10 * MINUTE,
  },
  'user_transaction_windows',
);

export const featureDeclarations = {
  userTransactionCounts: {
    entity: 'user',
    entityKey: 'user_id',
    fields: { total_transactions_count: 'long' },
    eventTimeField: 'event_timestamp_millis',
    monotonicField: 'total_transactions_count',
    topic: 'userTransactionCounts',
    table: 'userTransactionCounts',
    redisSink: 'user-transaction-counts-redis-sink',
  },
  userTransactionWindows: {
    entity: 'user',
    entityKey: 'user_id',
    redisKey: 'user_windows',
    // the monotonic field is stored with the values: the guard of every later write compares it
    fields: { events: 'long', ...Object.fromEntries(windowColumns(transactionWindows, 'amount').map(({ name, aggregate }) => [name, aggregate === 'count' ? 'long' : 'double'])) },
    eventTimeField: 'windows_as_of',
    monotonicField: 'events',
    topic: 'userTransactionWindows',
    table: 'userTransactionWindows',
    redisSink: 'user-transaction-windows-redis-sink',
  },
  sessionScores: {
    entity: 'session',
    entityKey: 'user_session',
    fields: { purchase_probability: 'double', model_version: 'int', events: 'int', views: 'int', carts: 'int', cart_value: 'double' },
    eventTimeField: 'event_time',
    monotonicField: 'events',
    topic: 'sessionPredictions',
    table: 'sessionPredictions',
    redisSink: 'session-scores-redis-sink',
    ttlSeconds: 2 * 60 * 60,
  },
  /** The promo's running economics, one hash per shard; the summary is their sum (`readPromoSummary`). */
  promoEconomics: {
    entity: 'promo',
    entityKey: 'shard',
    fields: {
      actions: 'long',
      offers: 'long',
      promo_conversions: 'long',
      simulated_conversions: 'long',
      organic_conversions: 'long',
      revenue_cents: 'long',
      promo_revenue_cents: 'long',
      discount_cents: 'long',
      margin_cents: 'long',
    },
    eventTimeField: 'event_time',
    monotonicField: 'actions',
    topic: 'promoEconomics',
    table: 'promoEconomics',
    redisSink: 'promo-economics-redis-sink',
  },
} satisfies Record<string, FeatureDeclaration>;

export type FeatureId = keyof typeof featureDeclarations;

/**
 * Stream jobs that are not derived from a table or a feature: what each reads, writes and keeps.
 * `stores` are the runtime's keyed state stores, each with its compacted changelog topic
 * (core/runtime/processor.ts); the jobs, their ACLs and the dashboard's lag derive from this.
 */
export interface ProcessorDeclaration {
  name: string;
  input: TopicId;
  outputs: readonly TopicId[];
  stores?: Readonly<Record<string, TopicId>>;
}

export const processorDeclarations = {
  /** Its store's changelog is its own output: every count it emits. */
  transactionsFeatures: {
    name: 'transactions-ml-features-job',
    input: 'transactions',
    outputs: ['userTransactionCounts', 'userTransactionWindows'],
    stores: { counts: 'userTransactionCounts', windows: 'transactionWindowsState' },
  },
  sessionScorer: { name: 'session-scorer', input: 'shopEvents', outputs: ['sessionPredictions'], stores: { sessions: 'sessionState' } },
  promo: { name: 'promo', input: 'sessionPredictions', outputs: ['promoActions'], stores: { sessions: 'promoState', totals: 'promoEconomics' } },
  /** Stateless: each product passes or is blocked by the denylist as it stands in Redis. */
  productFilter: { name: 'product-filter', input: 'inputProducts', outputs: ['products', 'blockedProducts'] },
} as const satisfies Record<string, ProcessorDeclaration>;

export type ProcessorId = keyof typeof processorDeclarations;

/** A dead-letter topic's settings; one exists for every declared topic. */
const deadLetterTopic = { partitions: 1, replicationFactor: 3, minInsyncReplicas: 2, retentionMs: 14 * DAY, cleanupPolicy: 'delete' } as const;

/** Object-store roots (under the bucket) that are not tables. */
const roots = {
  sinkState: '_lakestream/sinks',
  backfillManifests: '_lakestream/backfill',
  compactionManifests: '_lakestream/compaction',
  locks: '_lakestream/locks',
  /** Versioned model artifacts: `<models>/<name>/v<N>/`. */
  models: 'models',
  /** The Iceberg tables' files: the catalog puts each table at `<warehouse>/<table>_<uuid>/`. */
  warehouse: 'warehouse',
};

/** The Iceberg namespace of a catalog namespace: `lake` for production, else the name in SQL-friendly characters. */
export function icebergNamespace(namespace: string): string {
  return namespace ? namespace.replace(/[^A-Za-z0-9_]/g, '_') : 'lake';
}

/** A topic as infra:apply creates it. */
export interface TopicSpec {
  name: string;
  partitions: number;
  replicationFactor: number;
  minInsyncReplicas: number;
  retentionMs: number;
  cleanupPolicy: TopicDeclaration['cleanupPolicy'];
  /** For compacted topics: how long a record stays uncompacted (`min.compaction.lag.ms`). */
  minCompactionLagMs?: number;
  valueSchema?: string;
  description: string;
}

export interface ResolvedTable extends Omit<TableDeclaration, 'topic'> {
  id: TableId;
  /** The namespaced topic it archives. */
  topic: string;
  valueSchema: string;
  /** The sink's consumer group. */
  group: string;
  /** Where the sink keeps its per-partition state: `<stateRoot>/<group>/partition=<p>.json`. */
  sinkStateRoot: string;
  /** The Iceberg table in the REST catalog: namespace `lake` (tests: their namespace), named like the view. */
  iceberg: { namespace: string[]; name: string };
}

export interface ResolvedFeature extends Omit<FeatureDeclaration, 'topic' | 'table'> {
  id: FeatureId;
  topic: string;
  table: ResolvedTable;
  valueSchema: string;
  /** Redis key prefix; a key is `<prefix><entity id>`. */
  redisPrefix: string;
  redisSinkGroup?: string;
}

export interface Catalog {
  namespace: string;
  /** Namespaced topic names, by id. */
  topic: Record<TopicId, string>;
  /** Every topic to create, dead-letter topics included. */
  topicSpecs: TopicSpec[];
  /** The topic's declaration, by namespaced name. */
  topicByName(name: string): (TopicDeclaration & { name: string }) | undefined;
  deadLetterTopic(topic: string): string;
  /** The consumer group (and transactional-id stem) of a job. */
  group(job: string): string;
  tables: Record<TableId, ResolvedTable>;
  features: Record<FeatureId, ResolvedFeature>;
  /** Object-store roots, namespaced. */
  roots: typeof roots;
  /** Redis keys that are not features: the product denylist (a hash of product id to entry). */
  redisKeys: { productDenylist: string; /** Prefix of the gateway's Idempotency-Key entries. */ gatewayIdempotency: string };
}

/**
 * The catalog with every name resolved under `namespace`: topics `<ns>.transactions`, groups
 * `<ns>.transactions-job-backup`, lake paths `<ns>/transactions`, Redis keys
 * `<ns>:feat:user:`. The empty namespace is production; tests and parallel environments isolate
 * themselves with one.
 */
export function catalog(namespace = ''): Catalog {
  const topicName = (name: string) => (namespace ? `${namespace}.${name}` : name);
  const path = (name: string) => (namespace ? `${namespace}/${name}` : name);
  const group = topicName;
  const deadLetter = (topic: string) => `dlq.${topic}`;
  const topic = Object.fromEntries(Object.entries(topicDeclarations).map(([id, d]) => [id, topicName(d.name)])) as Record<TopicId, string>;
  const byName = new Map<string, TopicDeclaration & { name: string }>(
    Object.entries(topicDeclarations).map(([id, d]) => [topic[id as TopicId], { ...(d as TopicDeclaration), name: topic[id as TopicId] }]),
  );
  const resolvedRoots = Object.fromEntries(Object.entries(roots).map(([id, root]) => [id, path(root)])) as typeof roots;

  const archived = new Set<TopicId>(Object.values(tableDeclarations).map((table) => table.topic));
  const topicSpecs: TopicSpec[] = [];
  for (const [id, d] of Object.entries(topicDeclarations) as Array<[TopicId, TopicDeclaration]>) {
    const { rules: _rules, key: _key, gateway: _gateway, ...spec } = d;
    const compacted = d.cleanupPolicy.includes('compact');
    topicSpecs.push({ ...spec, name: topic[id], ...(compacted ? { minCompactionLagMs: archived.has(id) ? ARCHIVED_COMPACTION_LAG_MS : 0 } : {}) });
  }
  for (const [id, d] of Object.entries(topicDeclarations) as Array<[TopicId, TopicDeclaration]>) {
    topicSpecs.push({
      ...deadLetterTopic,
      name: deadLetter(topic[id]),
      description: `Records of ${d.name} that could not be decoded or validated, with the original bytes and the reason in dlq.* headers.`,
    });
  }

  const tables = Object.fromEntries(
    (Object.entries(tableDeclarations) as Array<[TableId, TableDeclaration]>).map(([id, d]) => [
      id,
      {
        ...d,
        id,
        path: path(d.path),
        topic: topic[d.topic],
        valueSchema: topicDeclarations[d.topic].valueSchema,
        group: group(d.sink),
        sinkStateRoot: `${resolvedRoots.sinkState}/${group(d.sink)}`,
        iceberg: { namespace: [icebergNamespace(namespace)], name: d.view },
      } satisfies ResolvedTable,
    ]),
  ) as Record<TableId, ResolvedTable>;

  const features = Object.fromEntries(
    (Object.entries(featureDeclarations) as Array<[FeatureId, FeatureDeclaration]>).map(([id, d]) => [
      id,
      {
        ...d,
        id,
        topic: topic[d.topic],
        table: tables[d.table],
        valueSchema: topicDeclarations[d.topic].valueSchema,
        redisPrefix: `${namespace ? `${namespace}:` : ''}feat:${d.redisKey ?? d.entity}:`,
        ...(d.redisSink ? { redisSinkGroup: group(d.redisSink) } : {}),
      } satisfies ResolvedFeature,
    ]),
  ) as Record<FeatureId, ResolvedFeature>;

  return {
    namespace,
    topic,
    topicSpecs,
    topicByName: (name) => byName.get(name),
    deadLetterTopic: deadLetter,
    group,
    tables,
    features,
    roots: resolvedRoots,
    redisKeys: {
      productDenylist: `${namespace ? `${namespace}:` : ''}denylist:products`,
      gatewayIdempotency: `${namespace ? `${namespace}:` : ''}gateway:idempotency:`,
    },
  };
}
