import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { catalog, icebergNamespace, type Catalog, type ResolvedTable } from './catalog.ts';
import { repoRoot, type Config } from '../core/config.ts';
import { lakeCatalog } from './context.ts';
import { loadExtension, openDuckdb, sqlString } from '../core/duckdb.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { duckdbTypeOf, tableColumns } from '../core/iceberg/schema.ts';
import { ensureTable, type TableDeps, type TableState } from '../core/iceberg/table.ts';
import { KAFKA_POSITION_COLUMNS, columnsOf } from '../core/lake-layout.ts';
import { createObjectStore } from '../core/object-store.ts';
import { createS3 } from '../core/s3.ts';

/** The name under which `openLake` attaches the Iceberg catalog: `lakehouse.<namespace>.<table>`. */
export const LAKEHOUSE = 'lakehouse';

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * DuckDB with the lake's Iceberg REST catalog attached (`lakehouse`, through DuckDB's iceberg
 * extension) and one view per lake table over its Iceberg table, so SQL reads exactly what the
 * table's current snapshot holds: every committed file, nothing uncommitted, old and new schema
 * versions together. A table not created yet is an empty view with the schema's columns, so
 * queries work on a new lake too. `lakehouse.<namespace>.<table>` is the attached catalog itself.
 *
 * `asOf` reads every table as it was at a time (ISO 8601 with its zone) or at a Nessie commit:
 * Nessie keeps one snapshot per table in its Iceberg metadata and versions the whole catalog
 * instead, so the state of a table at a time is the table loaded as `<name>#<time or commit>`,
 * and its views read that metadata file with `iceberg_scan`. A table that did not exist then is
 * empty.
 */
export async function openLake(config: Config, namespace = '', options: { asOf?: string } = {}): Promise<{ connection: DuckDBConnection; close(): void }> {
  const duck = await openDuckdb(config);
  try {
    await loadExtension(duck.connection, config, 'avro');
    await loadExtension(duck.connection, config, 'iceberg');
    const names = catalog(namespace);
    const icebergNs = icebergNamespace(namespace);
    // One request to the object store first: an unreachable or refusing S3 is named as such,
    // not as a DuckDB error half-way through a query (or not at all, for a lake with no tables yet).
    const s3 = createS3(config);
    try {
      await createObjectStore(s3, config.LAKE_BUCKET).hasAny(`${names.roots.warehouse}/`);
    } finally {
      s3.destroy();
    }
    const existing = new Set(await lakeCatalog(config).listTables([icebergNs]));
    if (existing.size) {
      try {
        // the local S3 secret reads the files: the catalog vends no credentials
        await duck.connection.run(
          `ATTACH ${sqlString(config.ICEBERG_WAREHOUSE)} AS ${LAKEHOUSE} (TYPE iceberg, ENDPOINT ${sqlString(config.ICEBERG_CATALOG_URL)}, ${
            config.ICEBERG_TOKEN ? `TOKEN ${sqlString(config.ICEBERG_TOKEN)}` : "AUTHORIZATION_TYPE 'none'"
          }, ACCESS_DELEGATION_MODE 'none')`,
        );
      } catch (cause) {
        throw new LakestreamError('DUCKDB_ERROR', `DuckDB could not attach the Iceberg catalog at ${config.ICEBERG_CATALOG_URL}: ${errorMessage(cause)}`, { cause });
      }
    }
    for (const table of Object.values(names.tables)) {
      const then = existing.has(table.iceberg.name) && options.asOf !== undefined ? await tableAsOf(config, icebergNs, table.iceberg.name, options.asOf) : undefined;
      if (then) {
        await duck.connection.run(`CREATE OR REPLACE VIEW ${table.view} AS SELECT * FROM iceberg_scan(${sqlString(then)})`);
      } else if (existing.has(table.iceberg.name) && options.asOf === undefined) {
        await duck.connection.run(`CREATE OR REPLACE VIEW ${table.view} AS SELECT * FROM ${LAKEHOUSE}.${quote(icebergNs)}.${quote(table.iceberg.name)}`);
      } else {
        const columns = tableColumns(declaredColumns(table));
        const select = columns.map((c) => `NULL::${duckdbTypeOf[c.type]} AS ${quote(c.name)}`).join(', ');
        await duck.connection.run(`CREATE OR REPLACE VIEW ${table.view} AS SELECT ${select} WHERE false`);
      }
    }
  } catch (error) {
    duck.close();
    throw error;
  }
  return duck;
}

/** A time with its zone, or a Nessie commit id (hex). */
export function validAsOf(value: string): boolean {
  return /^[0-9a-f]{16,64}$/.test(value) || (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value)));
}

/** The metadata file of `name` as of a time or Nessie commit; undefined if it did not exist or held nothing then. */
async function tableAsOf(config: Config, namespace: string, name: string, asOf: string): Promise<string | undefined> {
  try {
    const then = await lakeCatalog(config).loadTable([namespace], `${name}#${asOf}`);
    // created but not yet written to: nothing to scan
    const current = then?.metadata['current-snapshot-id'];
    return current === undefined || current === null || Number(current) < 0 ? undefined : then!.metadataLocation;
  } catch (cause) {
    throw new LakestreamError('USAGE', `the Iceberg catalog at ${config.ICEBERG_CATALOG_URL} cannot load ${namespace}.${name} as of ${asOf} (time travel needs a Nessie catalog): ${errorMessage(cause)}`, { cause });
  }
}

/** The columns of a lake table's Avro value schema as the repository declares it. */
export function declaredColumns(table: Pick<ResolvedTable, 'valueSchema' | 'kafkaPosition'>) {
  const columns = columnsOf(JSON.parse(readFileSync(join(repoRoot, 'schemas', table.valueSchema), 'utf8')));
  return table.kafkaPosition ? [...columns, ...KAFKA_POSITION_COLUMNS] : columns;
}

/** Where the catalog puts a namespace's tables: `s3://<bucket>/<warehouse root>/`. */
export const warehouseLocation = (names: Catalog, bucket: string) => `s3://${bucket}/${names.roots.warehouse}/`;

/**
 * Creates a lake table's Iceberg table if absent (schema from its Avro schema, identity
 * partitions on dt and hour, sorted by event time), and returns its state. infra:apply creates
 * every table ahead; sinks and the backfill call this too, so a table never missing is not an
 * ordering rule between commands.
 */
export function ensureLakeTable(deps: TableDeps, names: Catalog, table: ResolvedTable, bucket: string): Promise<TableState> {
  return ensureTable(deps, table.iceberg, declaredColumns(table), warehouseLocation(names, bucket), table.eventTimeField);
}
