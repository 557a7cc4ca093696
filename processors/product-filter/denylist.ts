import pg from 'pg';
import type { Redis } from 'ioredis';
import type { Config } from '../../core/config.ts';
import { LakestreamError, errorMessage, isNetworkError, redactedUrl } from '../../core/errors.ts';
import { createRedis, redisFailure } from '../../core/redis.ts';

export interface DenylistEntry {
  reason: string;
  /** When it was added, ms since the epoch (0: unknown). */
  added_at: number;
}

/** The list as one request read it. */
export interface DenylistSnapshot {
  entries: Map<string, DenylistEntry>;
  /**
   * Whether the list exists, empty or not. In Redis a hash without fields does not exist, so the
   * list keeps a marker field from its first change on: a list that existed and is now missing
   * was lost (a FLUSHALL, a failover to an empty replica), not emptied, and a filter must not
   * read it as "nothing is forbidden".
   */
  exists: boolean;
}

/**
 * The product denylist, in Redis or PostgreSQL (DENYLIST_STORE). Either way `read` returns the
 * whole list in one request, so the filter never judges by half a change.
 */
export interface DenylistStore {
  /** Where the list lives, for messages: the server (without a password) and the key or table. */
  readonly where: string;
  /** True if the product was not on the list (else its reason is replaced). */
  add(id: string, reason: string): Promise<boolean>;
  /** True if the product was on the list. */
  remove(id: string): Promise<boolean>;
  read(): Promise<DenylistSnapshot>;
  close(): Promise<void>;
}

export function productId(text: string): string {
  if (!/^\d{1,19}$/.test(text) || BigInt(text) >= 2n ** 63n) throw new LakestreamError('USAGE', `a product id is a non-negative 64-bit integer, got ${JSON.stringify(text)}`);
  return BigInt(text).toString();
}

/**
 * The store DENYLIST_STORE names. `list` is the catalog's denylist key: a Redis hash's key, or
 * the value of the `list` column in PostgreSQL, so namespaced pipelines keep separate lists.
 * `redis` lends a connection the caller owns; without it the store opens (and closes) its own.
 */
export function openDenylist(config: Config, list: string, options: { redis?: () => Redis; connectTimeoutMs?: number } = {}): DenylistStore {
  return config.DENYLIST_STORE === 'postgres' ? postgresDenylist(config.POSTGRES_URL, list, options) : redisDenylist(config.REDIS_URL, list, options);
}

/** The field that marks the list as existing; not a product id, which is digits only. */
const LIST_MARKER = '.list';

/** One hash, product id → JSON entry, plus the marker: `list` in one round trip. */
function redisDenylist(url: string, key: string, options: { redis?: () => Redis; connectTimeoutMs?: number }): DenylistStore {
  let owned: Redis | undefined;
  const redis = () => options.redis?.() ?? (owned ??= createRedis({ REDIS_URL: url }, { maxRetriesPerRequest: 1, connectTimeout: options.connectTimeoutMs ?? 3_000 }));
  const call = <T>(fn: (client: Redis) => Promise<T>): Promise<T> => {
    const client = redis();
    return fn(client).catch((error: unknown) => {
      throw redisFailure(client, url, error);
    });
  };
  const marked = async (client: Redis, change: (multi: ReturnType<Redis['multi']>) => void): Promise<number> => {
    const multi = client.multi().hsetnx(key, LIST_MARKER, JSON.stringify({ created_at: Date.now() }));
    change(multi);
    const results = (await multi.exec()) ?? [];
    const failed = results.find(([error]) => error);
    if (failed) throw failed[0];
    return Number(results.at(-1)?.[1] ?? 0);
  };
  return {
    where: `Redis ${redactedUrl(url)} key ${key}`,
    add: (id, reason) => call(async (client) => (await marked(client, (multi) => multi.hset(key, productId(id), JSON.stringify({ reason, added_at: Date.now() } satisfies DenylistEntry)))) === 1),
    remove: (id) => call(async (client) => (await marked(client, (multi) => multi.hdel(key, productId(id)))) === 1),
    read: () =>
      call(async (client) => {
        const raw = await client.hgetall(key);
        const exists = Object.hasOwn(raw, LIST_MARKER);
        delete raw[LIST_MARKER];
        const entries = new Map(
          Object.entries(raw).map(([id, value]) => {
            try {
              const parsed = JSON.parse(value) as Partial<DenylistEntry>;
              return [id, { reason: String(parsed.reason ?? 'denylisted'), added_at: Number(parsed.added_at ?? 0) }];
            } catch {
              // an entry written by hand (`HSET key id reason`): the value is the reason
              return [id, { reason: value || 'denylisted', added_at: 0 }];
            }
          }),
        );
        // entries written by hand without the marker still make a list
        return { entries, exists: exists || entries.size > 0 };
      }),
    async close() {
      if (owned?.status === 'ready') await owned.quit();
      else owned?.disconnect();
    },
  };
}

const TABLE = 'lakestream_product_denylist';

/**
 * One table for every namespace's list, keyed (list, product_id): an operator can also edit it
 * with plain SQL (`INSERT INTO lakestream_product_denylist (list, product_id, reason) …`).
 */
function postgresDenylist(url: string, list: string, options: { connectTimeoutMs?: number }): DenylistStore {
  const where = `PostgreSQL ${redactedUrl(url)} table ${TABLE} (list ${list})`;
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: options.connectTimeoutMs ?? 3_000, query_timeout: 5_000, idleTimeoutMillis: 30_000 });
  // an idle client's lost connection is reported on the pool; the next query reconnects and reports it properly
  pool.on('error', () => {});
  let created: Promise<void> | undefined;
  const ensureTable = () =>
    (created ??= pool
      .query(
        `CREATE TABLE IF NOT EXISTS ${TABLE} (
           list text NOT NULL,
           product_id bigint NOT NULL CHECK (product_id >= 0),
           reason text NOT NULL DEFAULT 'denylisted',
           added_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (list, product_id)
         )`,
      )
      .then(
        () => undefined,
        (error: { code?: string }) => {
          // two processes creating it at once: the loser's unique violation means it exists
          if (error.code === '23505' || error.code === '42P07') return;
          created = undefined;
          throw error;
        },
      ));
  const call = async <T>(sql: string, params: unknown[], map: (result: pg.QueryResult) => T): Promise<T> => {
    try {
      await ensureTable();
      return map(await pool.query(sql, params));
    } catch (error) {
      throw postgresFailure(url, error);
    }
  };
  return {
    where,
    add: (id, reason) =>
      call(
        `INSERT INTO ${TABLE} (list, product_id, reason) VALUES ($1, $2, $3)
         ON CONFLICT (list, product_id) DO UPDATE SET reason = EXCLUDED.reason, added_at = now() RETURNING (xmax = 0) AS inserted`,
        [list, productId(id), reason],
        (result) => Boolean(result.rows[0]?.inserted),
      ),
    remove: (id) => call(`DELETE FROM ${TABLE} WHERE list = $1 AND product_id = $2`, [list, productId(id)], (result) => (result.rowCount ?? 0) > 0),
    read: () =>
      call(
        `SELECT product_id::text AS id, reason, (extract(epoch FROM added_at) * 1000)::bigint::text AS added_at FROM ${TABLE} WHERE list = $1`,
        [list],
        // a table is not flushed away with a cache: the list exists once the table does
        (result) => ({ entries: new Map(result.rows.map((row: { id: string; reason: string; added_at: string }) => [row.id, { reason: row.reason, added_at: Number(row.added_at) }])), exists: true }),
      ),
    close: () => pool.end(),
  };
}

/** A failure that names the server (never its password) and says whether it was reachable at all. */
function postgresFailure(url: string, error: unknown): LakestreamError {
  const code = (error as { code?: unknown }).code;
  const message = errorMessage(error);
  const what =
    isNetworkError(error) || /timeout/i.test(message)
      ? 'is unreachable'
      : code === '28P01' || code === '28000'
        ? 'refused the sign-in'
        : 'failed';
  return new LakestreamError('POSTGRES_ERROR', `PostgreSQL at ${redactedUrl(url)} ${what}: ${message}`, { cause: error, retriable: what !== 'refused the sign-in' });
}
