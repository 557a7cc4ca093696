import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import type { Config } from '../core/config.ts';
import { sqlString } from '../core/duckdb.ts';
import { LakestreamError } from '../core/errors.ts';
import { catalog, type ResolvedFeature } from '../platform/catalog.ts';
import { openLake } from '../platform/lake.ts';

/**
 * Point-in-time training data from the lake (Feast's `get_historical_features`): for each row of
 * an entity table (a join key, `event_timestamp`, anything else such as a label), the feature
 * values as they were at that time: the feature table's latest row for the entity at or before
 * it, never after (no leakage from the future), null where the entity had none yet. One DuckDB
 * ASOF join per feature view over the lake's tables; rows keep their order and their columns.
 */
export interface TrainingSetRequest {
  /** A CSV or Parquet file of entity rows; `event_timestamp` is a timestamp (with or without zone: UTC) or epoch milliseconds. */
  entities: string;
  /** Where to write the training set: `.parquet` or `.csv`. */
  out: string;
  /** Feature references, `<view>:<feature>` as the feature server takes them. */
  features: string[];
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

function readerOf(path: string): string {
  const kind = extname(path).toLowerCase();
  if (kind === '.csv') return `read_csv(${sqlString(path)}, header = true)`;
  if (kind === '.parquet') return `read_parquet(${sqlString(path)})`;
  throw new LakestreamError('USAGE', `--entities ${path}: a .csv or .parquet file`);
}

/** The features by view, checked against the catalog; a view is named like its lake table. */
function resolve(namespace: string, refs: string[]): Map<ResolvedFeature, string[]> {
  const views = new Map(Object.values(catalog(namespace).features).map((feature) => [feature.table.view, feature]));
  const byView = new Map<ResolvedFeature, string[]>();
  for (const ref of refs) {
    const [view, name, extra] = ref.split(':');
    const feature = views.get(view ?? '');
    if (!feature || name === undefined || extra !== undefined) throw new LakestreamError('USAGE', `--feature ${ref}: expected <view>:<feature> with a view of ${[...views.keys()].join(', ')}`);
    if (!(name in feature.fields)) throw new LakestreamError('USAGE', `--feature ${ref}: ${view} has no feature ${name} (it has ${Object.keys(feature.fields).join(', ')})`);
    byView.set(feature, [...(byView.get(feature) ?? []), name]);
  }
  return byView;
}

export async function buildTrainingSet(config: Config, namespace: string, request: TrainingSetRequest): Promise<{ rows: number; matched: Record<string, number> }> {
  if (!existsSync(request.entities)) throw new LakestreamError('USAGE', `--entities ${request.entities}: no such file`);
  const format = extname(request.out).toLowerCase();
  if (format !== '.parquet' && format !== '.csv') throw new LakestreamError('USAGE', `--out ${request.out}: a .parquet or .csv file`);
  const byView = resolve(namespace, request.features);
  const lake = await openLake(config, namespace);
  try {
    const db = lake.connection;
    // a timestamp without a zone is UTC, as the lake's event times are
    await db.run("SET TimeZone = 'UTC'");
    await db.run(`CREATE TEMP TABLE entity_rows AS SELECT row_number() OVER () AS __row, * FROM ${readerOf(request.entities)}`);
    const columns = new Map(
      ((await db.runAndReadAll('DESCRIBE entity_rows')).getRowObjectsJS() as Array<{ column_name: string; column_type: string }>).map((c) => [c.column_name, c.column_type]),
    );
    const at = columns.get('event_timestamp');
    if (!at) throw new LakestreamError('USAGE', `--entities ${request.entities}: no event_timestamp column (columns: ${[...columns.keys()].filter((c) => c !== '__row').join(', ')})`);
    // epoch ms, as the feature tables keep event times
    const atMs = /INT/.test(at) ? 'event_timestamp' : /TIMESTAMP|DATE|VARCHAR/.test(at) ? `epoch_ms(CAST(event_timestamp AS TIMESTAMPTZ))` : undefined;
    if (!atMs) throw new LakestreamError('USAGE', `--entities ${request.entities}: event_timestamp is ${at}, not a timestamp or epoch milliseconds`);
    const names = [...byView.values()].flat();
    const clash = names.find((name, i) => names.indexOf(name) !== i || columns.has(name));
    if (clash) throw new LakestreamError('USAGE', `feature ${clash} is named twice (by two views, or by a column of --entities)`);
    for (const feature of byView.keys()) {
      if (!columns.has(feature.entityKey)) throw new LakestreamError('USAGE', `--entities ${request.entities}: no ${feature.entityKey} column, which ${feature.table.view} is joined on`);
    }

    let from = `(SELECT *, ${atMs} AS __at FROM entity_rows) AS e`;
    const selected: string[] = [];
    const matched: string[] = [];
    [...byView].forEach(([feature, wanted], index) => {
      const alias = `f${index}`;
      // one row per entity and event time: where several share one, the latest by the monotonic field
      const latest = wanted.map((name) => `arg_max(${ident(name)}, ${ident(feature.monotonicField)}) AS ${ident(name)}`).join(', ');
      from += ` ASOF LEFT JOIN (SELECT ${ident(feature.entityKey)} AS __key, ${ident(feature.eventTimeField)} AS __t, ${latest} FROM ${ident(feature.table.view)} GROUP BY 1, 2) AS ${alias}
        ON e.${ident(feature.entityKey)} = ${alias}.__key AND e.__at >= ${alias}.__t`;
      for (const name of wanted) selected.push(`${alias}.${ident(name)}`);
      matched.push(`count(${alias}.__t) AS ${ident(feature.table.view)}`);
    });
    const query = `SELECT e.* EXCLUDE (__row, __at), ${selected.join(', ')} FROM ${from} ORDER BY e.__row`;
    await db.run(`CREATE TEMP TABLE training AS ${query}`);
    await db.run(`COPY training TO ${sqlString(request.out)} (FORMAT ${format === '.csv' ? 'csv, HEADER true' : 'parquet, COMPRESSION zstd'})`);
    const [counts] = (await db.runAndReadAll(`SELECT count(*)::BIGINT AS rows, ${matched.join(', ')} FROM ${from}`)).getRowObjectsJS() as Array<Record<string, bigint>>;
    return { rows: Number(counts!.rows), matched: Object.fromEntries([...byView.keys()].map((feature) => [feature.table.view, Number(counts![feature.table.view])])) };
  } finally {
    lake.close();
  }
}
