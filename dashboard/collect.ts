import type { Admin } from '@platformatic/kafka';
import { processorDeclarations, type Catalog } from '../platform/catalog.ts';
import type { Config } from '../core/config.ts';
import { errorMessage } from '../core/errors.ts';
import { createAdmin } from '../core/kafka.ts';
import { createClientContext } from '../platform/context.ts';
import { loadTableState } from '../core/iceberg/table.ts';
import { openLake } from '../platform/lake.ts';
import { readPromoSummary, type PromoSummary } from '../features/promo-summary.ts';
import { withTimeout } from '../core/async.ts';

/**
 * What the dashboard shows, gathered from the servers themselves: Kafka (offsets), the lake
 * (DuckDB over S3, object listings), Redis (the promo's online economics) and the registry's
 * health. Every figure carries the name of its source, and the SQL where one was run, so a
 * number on the page can be traced and checked by hand.
 */
export interface Snapshot {
  at: number;
  namespace: string;
  services: ServiceHealth[];
  topics: Array<{ topic: string; records: number; perSecond: number | null }>;
  lag: Array<{ group: string; topic: string; total: number; partitions: Array<{ partition: number; lag: number }> }>;
  deadLetters: Array<{ topic: string; records: number }>;
  lake: { tables: LakeTable[]; runs: ScheduledRun[]; refreshedAt: number | null };
  business: {
    promo: PromoSummary | null;
    probabilities: Array<{ band: string; sessions: number }>;
    conversion: Array<{ group: string; sessions: number; purchased: number; rate: number | null }>;
    hourly: Array<{ hour: string; revenue_cents: number; discount_cents: number; margin_cents: number }>;
  };
  transactions: {
    perSecond: number | null;
    topUsers: Array<{ user_id: number; transactions: number }>;
    amounts: Array<{ currency: string; bucket: number; transactions: number }>;
  };
  /** Where each part of the snapshot comes from: a server and the query run there. */
  sources: Record<string, string>;
}

export interface ServiceHealth {
  name: string;
  ok: boolean;
  /** The setting that points at the service, for the banner. */
  setting: string;
  error?: string;
}

export interface LakeTable {
  table: string;
  path: string;
  sink: string;
  rows: number;
  files: number;
  bytes: number;
  lastFlush: number | null;
}

export interface ScheduledRun {
  kind: 'backfill' | 'compaction';
  name: string;
  status: string;
  at: number;
}

export const queries = {
  // each session once, at its latest score
  probabilities: `WITH latest AS (
  SELECT user_session, arg_max(purchase_probability, event_time) AS probability FROM session_predictions WHERE kind = 'score' GROUP BY 1
)
SELECT floor(least(probability, 0.999) * 10)::INTEGER AS bin, count(*) AS sessions FROM latest GROUP BY 1 ORDER BY 1`,
  conversion: `WITH offered AS (SELECT DISTINCT user_session FROM promo_actions WHERE action = 'offer'),
sessions AS (
  SELECT s.user_session, o.user_session IS NOT NULL AS offered,
         bool_or(s.kind = 'purchase') OR coalesce(bool_or(p.action = 'purchase'), false) AS purchased
  FROM session_predictions s
  LEFT JOIN offered o USING (user_session)
  LEFT JOIN promo_actions p ON p.user_session = s.user_session AND p.action = 'purchase'
  GROUP BY 1, 2
)
SELECT CASE WHEN offered THEN 'with promo' ELSE 'without promo' END AS "group", count(*) AS sessions, count(*) FILTER (WHERE purchased) AS purchased
FROM sessions GROUP BY 1 ORDER BY 1 DESC`,
  hourly: `SELECT strftime(date_trunc('hour', epoch_ms(event_time)), '%Y-%m-%d %H:00') AS hour,
       sum(revenue_cents) AS revenue_cents, sum(discount_cents) AS discount_cents, sum(margin_cents) AS margin_cents
FROM promo_actions WHERE action = 'purchase' GROUP BY 1 ORDER BY 1`,
  topUsers: `SELECT user_id, count(*) AS transactions FROM transactions GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10`,
  // orders of magnitude, signed: -2 is a debit of 10 to 100, 3 a credit of 100 to 1,000
  amounts: `SELECT currency, (sign(amount) * (floor(log10(greatest(abs(amount), 1))) + 1))::INTEGER AS bucket, count(*) AS transactions
FROM transactions GROUP BY 1, 2 ORDER BY 1, 2`,
};

export interface Collector {
  /** Kafka, Redis and health: cheap, every few seconds. */
  snapshot(): Promise<Snapshot>;
  close(): Promise<void>;
}

export function createCollector(config: Config, options: { namespace?: string; lakeIntervalMs?: number } = {}): Collector {
  const namespace = options.namespace ?? '';
  // the dashboard's own clients, as every process gets them; Redis connects when first asked
  const context = createClientContext(config, { namespace, component: 'dashboard', redis: { lazyConnect: true, retryStrategy: () => 2_000 } });
  const names = context.catalog;
  const lakeIntervalMs = options.lakeIntervalMs ?? 10_000;
  let admin: Admin | undefined;
  const redis = context.redis();
  const store = context.objectStore();
  const lakeTables = context.lakeTables();
  let previous: { at: number; totals: Map<string, number> } | undefined;
  let lakeCache: { at: number; lake: Snapshot['lake']; business: Omit<Snapshot['business'], 'promo'>; transactions: Omit<Snapshot['transactions'], 'perSecond'> } | undefined;
  let lakeRefresh: Promise<void> | undefined;
  const lakeHealth: ServiceHealth[] = [];

  const groups = [
    ...Object.values(names.tables).map((table) => ({ group: table.group, topic: table.topic })),
    ...Object.values(processorDeclarations).map((p) => ({ group: names.group(p.name), topic: names.topic[p.input] })),
    ...Object.values(names.features).flatMap((feature) => (feature.redisSinkGroup ? [{ group: feature.redisSinkGroup, topic: feature.topic }] : [])),
  ];

  async function kafkaFigures(services: ServiceHealth[]) {
    const topics = [...names.topicSpecs.map((spec) => spec.name)];
    try {
      admin ??= createAdmin(config, 'lakestream-dashboard');
      const listed = new Set(await withTimeout(admin.listTopics(), 5_000, 'Kafka'));
      const existing = topics.filter((topic) => listed.has(topic));
      const metadata = await withTimeout(admin.metadata({ topics: existing, forceUpdate: true }), 5_000, 'Kafka');
      const request = (timestamp: bigint) => ({
        topics: existing.map((name) => ({ name, partitions: Array.from({ length: metadata.topics.get(name)!.partitionsCount }, (_, partitionIndex) => ({ partitionIndex, timestamp })) })),
      });
      const [latest, earliest] = existing.length ? await Promise.all([admin.listOffsets(request(-1n)), admin.listOffsets(request(-2n))]) : [[], []];
      const end = new Map(latest.map((t) => [t.name, new Map(t.partitions.map((p) => [p.partitionIndex, Number(p.offset)]))]));
      const start = new Map(earliest.map((t) => [t.name, new Map(t.partitions.map((p) => [p.partitionIndex, Number(p.offset)]))]));
      const records = (topic: string) => [...(end.get(topic) ?? new Map<number, number>())].reduce((sum, [p, offset]) => sum + offset - (start.get(topic)?.get(p) ?? 0), 0);
      const committed = await admin.listConsumerGroupOffsets({ groups: groups.map((g) => g.group) });
      const lag = groups.flatMap(({ group, topic }) => {
        const ends = end.get(topic);
        if (!ends) return [];
        const offsets = committed.find((c) => c.groupId === group)?.topics.find((t) => t.name === topic)?.partitions ?? [];
        if (!offsets.some((p) => Number(p.committedOffset) >= 0)) return [];
        const partitions = [...ends].map(([partition, endOffset]) => {
          const at = Number(offsets.find((p) => p.partitionIndex === partition)?.committedOffset ?? -1n);
          return { partition, lag: Math.max(0, endOffset - (at >= 0 ? at : start.get(topic)?.get(partition) ?? 0)) };
        });
        return [{ group, topic, total: partitions.reduce((sum, p) => sum + p.lag, 0), partitions }];
      });
      services.push({ name: 'Kafka', ok: true, setting: 'KAFKA_BROKERS' });
      return {
        topics: existing.filter((topic) => !topic.startsWith('dlq.')).map((topic) => ({ topic, records: records(topic) })),
        deadLetters: existing.filter((topic) => topic.startsWith('dlq.')).map((topic) => ({ topic, records: records(topic) })),
        lag,
      };
    } catch (error) {
      services.push({ name: 'Kafka', ok: false, setting: 'KAFKA_BROKERS', error: errorMessage(error) });
      await admin?.close().catch(() => {});
      admin = undefined;
      return { topics: [], deadLetters: [], lag: [] };
    }
  }

  async function promo(services: ServiceHealth[]): Promise<PromoSummary | null> {
    try {
      if (redis.status === 'wait' || redis.status === 'end') await withTimeout(redis.connect(), 3_000, 'Redis');
      const summary = await withTimeout(readPromoSummary(redis, names.features.promoEconomics), 3_000, 'Redis');
      services.push({ name: 'Redis', ok: true, setting: 'REDIS_URL' });
      return summary.shards ? summary : null;
    } catch (error) {
      services.push({ name: 'Redis', ok: false, setting: 'REDIS_URL', error: errorMessage(error) });
      return null;
    }
  }

  async function registryHealth(services: ServiceHealth[]) {
    try {
      const response = await withTimeout(fetch(`${config.SCHEMA_REGISTRY_URL.replace(/\/$/, '')}/subjects`), 3_000, 'the schema registry');
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      services.push({ name: 'Schema registry', ok: true, setting: 'SCHEMA_REGISTRY_URL' });
    } catch (error) {
      services.push({ name: 'Schema registry', ok: false, setting: 'SCHEMA_REGISTRY_URL', error: errorMessage(error) });
    }
  }

  /**
   * The lake: slower (DuckDB over S3), so refreshed every `lakeIntervalMs` in the background.
   * Rows, files and bytes come from each table's current snapshot summary (one metadata read
   * per table, at any lake size), not from scanning its files.
   */
  async function refreshLake(): Promise<void> {
    const tables = await Promise.all(
      Object.values(names.tables).map(async (table): Promise<LakeTable> => {
        const state = await loadTableState(lakeTables, table.iceberg);
        const summary: Record<string, string | undefined> = state?.snapshot?.summary ?? {};
        return {
          table: table.view,
          path: state?.loaded.metadata.location ?? `${table.iceberg.namespace.join('.')}.${table.iceberg.name} (not created yet)`,
          sink: table.group,
          rows: Number(summary['total-records'] ?? 0),
          files: Number(summary['total-data-files'] ?? 0),
          bytes: Number(summary['total-files-size'] ?? 0),
          lastFlush: state?.snapshot?.['timestamp-ms'] ?? null,
        };
      }),
    );
    const runs: ScheduledRun[] = [];
    for (const [kind, root] of [['backfill', names.roots.backfillManifests], ['compaction', names.roots.compactionManifests]] as const) {
      for (const object of await store.listWithTimes(`${root}/`)) {
        const manifest = await store.getJson<{ status?: string }>(object.key).catch(() => undefined);
        runs.push({ kind, name: object.key.slice(root.length + 1), status: manifest?.value.status ?? 'unknown', at: object.lastModified.getTime() });
      }
    }
    runs.sort((a, b) => b.at - a.at);
    const lake = await openLake(config, namespace);
    try {
      const read = async <T>(sql: string) => (await lake.connection.runAndReadAll(sql)).getRowObjectsJS() as T[];
      const bins = new Map((await read<{ bin: number; sessions: bigint }>(queries.probabilities)).map((r) => [Number(r.bin), Number(r.sessions)]));
      const probabilities = Array.from({ length: 10 }, (_, i) => ({ band: `${(i / 10).toFixed(1)}-${((i + 1) / 10).toFixed(1)}`, sessions: bins.get(i) ?? 0 }));
      const conversion = (await read<{ group: string; sessions: bigint; purchased: bigint }>(queries.conversion)).map((r) => ({
        group: r.group,
        sessions: Number(r.sessions),
        purchased: Number(r.purchased),
        rate: Number(r.sessions) ? Number(r.purchased) / Number(r.sessions) : null,
      }));
      const hourly = (await read<Record<string, unknown>>(queries.hourly)).map((r) => ({
        hour: String(r.hour),
        revenue_cents: Number(r.revenue_cents ?? 0),
        discount_cents: Number(r.discount_cents ?? 0),
        margin_cents: Number(r.margin_cents ?? 0),
      }));
      const topUsers = (await read<{ user_id: number; transactions: bigint }>(queries.topUsers)).map((r) => ({ user_id: Number(r.user_id), transactions: Number(r.transactions) }));
      const amounts = (await read<{ currency: string; bucket: number; transactions: bigint }>(queries.amounts)).map((r) => ({ currency: r.currency, bucket: Number(r.bucket), transactions: Number(r.transactions) }));
      lakeCache = { at: Date.now(), lake: { tables, runs: runs.slice(0, 20), refreshedAt: Date.now() }, business: { probabilities, conversion, hourly }, transactions: { topUsers, amounts } };
    } finally {
      lake.close();
    }
  }

  return {
    async snapshot() {
      const services: ServiceHealth[] = [];
      const at = Date.now();
      const [kafka, promoSummary] = await Promise.all([kafkaFigures(services), promo(services), registryHealth(services)]);
      // the lake is read in the background: a slow S3 never holds up the live figures
      if (!lakeRefresh && (!lakeCache || at - lakeCache.at >= lakeIntervalMs)) {
        // a catalog or S3 that hangs gets a report and a fresh try, not a refresh pending for ever
        lakeRefresh = withTimeout(refreshLake(), 60_000, 'the lake (Iceberg catalog and S3)')
          .then(() => lakeHealth.splice(0, lakeHealth.length, { name: 'S3 (lake)', ok: true, setting: 'S3_ENDPOINT' }))
          .catch((error: unknown) => lakeHealth.splice(0, lakeHealth.length, { name: 'S3 (lake)', ok: false, setting: 'S3_ENDPOINT', error: errorMessage(error) }))
          .then(() => void (lakeRefresh = undefined));
      }
      // the first snapshot does not wait for the lake either: the page shows its cards as loading
      // until `lake.refreshedAt` is set
      services.push(...lakeHealth);
      const totals = new Map(kafka.topics.map((t) => [t.topic, t.records]));
      const elapsed = previous ? (at - previous.at) / 1000 : 0;
      const before = previous;
      const rate = (topic: string) => (before && elapsed > 0 && before.totals.has(topic) && totals.has(topic) ? Math.max(0, (totals.get(topic)! - before.totals.get(topic)!) / elapsed) : null);
      if (kafka.topics.length) previous = { at, totals };
      const emptyLake = { tables: [], runs: [], refreshedAt: null };
      return {
        at,
        namespace,
        services: services.sort((a, b) => a.name.localeCompare(b.name)),
        topics: kafka.topics.map((t) => ({ ...t, perSecond: rate(t.topic) })),
        lag: kafka.lag,
        deadLetters: kafka.deadLetters,
        lake: lakeCache?.lake ?? emptyLake,
        business: { promo: promoSummary, probabilities: [], conversion: [], hourly: [], ...lakeCache?.business },
        transactions: { perSecond: rate(names.topic.transactions), topUsers: [], amounts: [], ...lakeCache?.transactions },
        sources: sourcesOf(names, config),
      };
    },
    async close() {
      await admin?.close().catch(() => {});
      redis.disconnect();
      await context.close();
    },
  };
}

function sourcesOf(names: Catalog, config: Config): Record<string, string> {
  return {
    topics: `Kafka ${config.KAFKA_BROKERS}: ListOffsets latest − earliest per topic; rate = change between two snapshots`,
    lag: "Kafka: OffsetFetch of each job's consumer group against ListOffsets latest, per partition (records read but not yet durable count too; in a topic written in transactions the last commit marker counts as 1)",
    deadLetters: 'Kafka: records in each dlq.* topic (ListOffsets latest − earliest)',
    tables: `Iceberg catalog ${config.ICEBERG_CATALOG_URL}: each table's current snapshot, its summary's total-records, total-data-files and total-files-size, its commit time as the last flush`,
    runs: `S3: run records under ${names.roots.backfillManifests}/ and ${names.roots.compactionManifests}/`,
    promo: `Redis ${config.REDIS_URL.replace(/\/\/[^@/]*@/, '//')}: the promo economics feature (${names.features.promoEconomics.redisPrefix}*), summed over shards`,
    probabilities: `DuckDB: ${queries.probabilities}`,
    conversion: `DuckDB: ${queries.conversion}`,
    hourly: `DuckDB: ${queries.hourly}`,
    transactionsPerSecond: `Kafka: change of ${names.topic.transactions}'s latest offsets between two snapshots`,
    topUsers: `DuckDB: ${queries.topUsers}`,
    amounts: `DuckDB: ${queries.amounts}`,
  };
}
