import type { Redis } from 'ioredis';
import type { Config } from '../core/config.ts';
import { emittedWindowsSql, windowColumns, type WindowDefinition } from '../core/windows.ts';
import { loadTableState } from '../core/iceberg/table.ts';
import { catalog, transactionWindows } from '../platform/catalog.ts';
import { createClientContext } from '../platform/context.ts';
import { openLake } from '../platform/lake.ts';
import { readFeatures } from './online-store.ts';

/**
 * The stream/backfill consistency check of the windowed features (docs/decisions/0020): for a
 * sample of users, the rows the stream emitted (archived in the lake's user_transaction_windows)
 * against the same declaration computed by DuckDB over the archived transactions, replaying
 * lateness from each row's Kafka position; and each user's values in Redis against the last of
 * those rows. 100% is the only passing rate.
 */
export interface WindowsCheckOptions {
  /** Users to compare (all of them when there are fewer). */
  sample: number;
  /** Picks the sample: the same seed, the same users. */
  seed: number;
  /** The declaration to recompute with (default: the catalog's); a test passes another to see the check fail. */
  definition?: WindowDefinition;
  /** Compare the online values too. */
  redis?: Redis;
}

export interface Mismatch {
  user_id: number;
  partition: number;
  offset: number;
  field: string;
  stream: unknown;
  lake: unknown;
}

export interface WindowsCheckResult {
  users: number;
  /** Rows computed by both and compared field by field. */
  compared: number;
  matched: number;
  /** On time for DuckDB, but no row from the stream (the stream called it late, or lost it). */
  missingFromStream: number;
  /** A row from the stream DuckDB does not give (late for DuckDB, or counted twice). */
  extraInStream: number;
  /**
   * Rows of the sample a windows backfill wrote (their source position lies below what its archive
   * held for their day): the backfill's engine is the one recomputing them, so they are not the
   * stream's to compare; the check compares the stream rows past them, and Redis.
   */
  backfilled: number;
  /** Transactions of the sample DuckDB calls late. */
  late: number;
  /**
   * Archived transactions without a Kafka position (archived before positions were kept): left
   * out of both the sample and the recomputation, as the windows (which came with the positions)
   * never saw them either.
   */
  unpositioned: number;
  /** Users whose Redis values were compared; `ahead`: Redis already holds updates the lake's archive does not yet. */
  online: { compared: number; matched: number; ahead: number };
  mismatches: Mismatch[];
  /** matched / (compared + missing + extra), online included; 1 only when everything matched. */
  matchRate: number;
}

const MAX_LISTED = 10;

const sameNumber = (a: unknown, b: unknown, field: string): boolean => {
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  const x = Number(a);
  const y = Number(b);
  // sums are added in arrival order by the stream and in any order by DuckDB: equal to rounding
  return field.includes('_sum_') ? Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x), Math.abs(y)) : x === y;
};

export async function checkWindows(config: Config, namespace: string, options: WindowsCheckOptions): Promise<WindowsCheckResult> {
  const definition = options.definition ?? transactionWindows;
  const names = catalog(namespace);
  const transactions = names.tables.transactions.view;
  const feature = names.features.userTransactionWindows;
  const emitted = feature.table.view;
  const columns = windowColumns(definition, 'amount');
  const lake = await openLake(config, namespace);
  const context = createClientContext(config, { namespace, component: 'features-check' });
  try {
    const covers = (await loadTableState(context.lakeTables(), feature.table.iceberg))?.covers ?? {};
    const byBackfill = (asOf: unknown, partition: number, offset: number) => {
      const cover = covers[new Date(Math.floor(Number(asOf) / 86_400_000) * 86_400_000).toISOString().slice(0, 10)]?.[partition];
      return cover !== undefined && offset < cover;
    };
    const db = lake.connection;
    const rows = async <T>(sql: string) => (await db.runAndReadAll(sql)).getRowObjectsJS() as T[];
    const [{ unpositioned }] = (await rows<{ unpositioned: bigint }>(`SELECT count(*) AS unpositioned FROM ${transactions} WHERE _kafka_offset IS NULL`)) as [{ unpositioned: bigint }];
    const seed = Math.trunc(options.seed);
    const users = (
      await rows<{ user_id: number }>(
        `SELECT user_id FROM ${transactions} WHERE _kafka_offset IS NOT NULL GROUP BY user_id ORDER BY hash(user_id, ${seed}), user_id LIMIT ${Math.max(0, Math.trunc(options.sample))}`,
      )
    ).map((row) => Number(row.user_id));
    const result: WindowsCheckResult = { users: users.length, compared: 0, matched: 0, missingFromStream: 0, extraInStream: 0, backfilled: 0, late: 0, unpositioned: Number(unpositioned), online: { compared: 0, matched: 0, ahead: 0 }, mismatches: [], matchRate: 0 };
    if (!users.length) return result;
    const inSample = users.join(', ');

    // Only what both archives hold: the two lake sinks run at their own pace.
    const events = `SELECT user_id AS entity, transaction_timestamp_millis AS event_time, amount AS value, _kafka_partition AS kafka_partition, _kafka_offset AS kafka_offset FROM ${transactions} WHERE _kafka_offset IS NOT NULL`;
    const through = new Map<number, number>();
    for (const row of await rows<{ p: number; o: bigint }>(`SELECT source_partition AS p, max(source_offset) AS o FROM ${emitted} GROUP BY 1`)) through.set(Number(row.p), Number(row.o));
    for (const row of await rows<{ p: number; o: bigint }>(`SELECT _kafka_partition AS p, max(_kafka_offset) AS o FROM ${transactions} WHERE _kafka_offset IS NOT NULL GROUP BY 1`)) {
      through.set(Number(row.p), Math.min(through.get(Number(row.p)) ?? -1, Number(row.o)));
    }
    const covered = (partition: number, offset: number) => offset <= (through.get(partition) ?? -1);

    const expected = await rows<Record<string, unknown>>(emittedWindowsSql(definition, 'amount', events, `entity IN (${inSample})`));
    const [{ n: sampleRows }] = (await rows<{ n: bigint }>(`SELECT count(*) AS n FROM ${transactions} WHERE user_id IN (${inSample}) AND _kafka_offset IS NOT NULL`)) as [{ n: bigint }];
    result.late = Number(sampleRows) - expected.length;
    const fromStream = new Map<string, Record<string, unknown>>();
    for (const row of await rows<Record<string, unknown>>(`SELECT * FROM ${emitted} WHERE user_id IN (${inSample})`)) {
      const key = `${row.source_partition}/${row.source_offset}`;
      // a row twice in the archive is a duplicate the check must see, not a map entry to overwrite
      if (fromStream.has(key)) result.extraInStream++;
      fromStream.set(key, row);
    }
    const mismatch = (m: Mismatch) => void (result.mismatches.length < MAX_LISTED && result.mismatches.push(m));
    const lastByUser = new Map<number, Record<string, unknown>>();
    for (const row of expected) {
      const partition = Number(row.kafka_partition);
      const offset = Number(row.kafka_offset);
      if (!covered(partition, offset)) continue;
      const user = Number(row.entity);
      const last = lastByUser.get(user);
      if (!last || Number(row.events) > Number(last.events)) lastByUser.set(user, row);
      const stream = fromStream.get(`${partition}/${offset}`);
      fromStream.delete(`${partition}/${offset}`);
      if (byBackfill(row.as_of, partition, offset)) {
        result.backfilled++;
        continue;
      }
      if (!stream) {
        result.missingFromStream++;
        mismatch({ user_id: user, partition, offset, field: '(row)', stream: null, lake: 'on time' });
        continue;
      }
      result.compared++;
      const fields: Array<[string, unknown, unknown]> = [
        ['windows_as_of', stream.windows_as_of, row.as_of],
        ['events', stream.events, row.events],
        ...columns.map(({ name }): [string, unknown, unknown] => [name, stream[name], row[name]]),
      ];
      const differing = fields.find(([field, a, b]) => !sameNumber(a, b, field));
      if (differing) mismatch({ user_id: user, partition, offset, field: differing[0], stream: differing[1], lake: differing[2] });
      else result.matched++;
    }
    for (const [key, row] of fromStream) {
      const [partition, offset] = key.split('/').map(Number) as [number, number];
      if (!covered(partition, offset) || byBackfill(row.windows_as_of, partition, offset)) continue;
      result.extraInStream++;
      mismatch({ user_id: Number(row.user_id), partition, offset, field: '(row)', stream: 'on time', lake: null });
    }

    if (options.redis) {
      const online = await readFeatures(options.redis, feature, users);
      users.forEach((user, i) => {
        const last = lastByUser.get(user);
        const row = online[i];
        // Redis ahead of the lake's archive is lag, not a difference: the next check compares it
        if (!last || Number(row?.events ?? 0) > Number(last.events)) {
          if (last) result.online.ahead++;
          return;
        }
        result.online.compared++;
        const fields: Array<[string, unknown, unknown]> = [
          ['updated_at', row?.updated_at, last.as_of],
          ['events', row?.events, last.events],
          ...columns.map(({ name }): [string, unknown, unknown] => [name, row?.[name], last[name]]),
        ];
        const differing = fields.find(([field, a, b]) => !sameNumber(a, b, field));
        if (differing) mismatch({ user_id: user, partition: Number(last.kafka_partition), offset: Number(last.kafka_offset), field: `redis:${differing[0]}`, stream: differing[1], lake: differing[2] });
        else result.online.matched++;
      });
    }
    const total = result.compared + result.missingFromStream + result.extraInStream + result.online.compared;
    result.matchRate = total ? (result.matched + result.online.matched) / total : 0;
    return result;
  } finally {
    lake.close();
    await context.close();
  }
}
