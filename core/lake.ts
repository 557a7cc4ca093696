import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { catalog } from './catalog.ts';
import { repoRoot, type Config } from './config.ts';
import { openDuckdb } from './duckdb.ts';
import { columnsOf } from './lake-layout.ts';
import { createObjectStore } from './object-store.ts';
import { createS3 } from './s3.ts';

/**
 * DuckDB with one view per lake table over `s3://<bucket>/<namespace>/<path>/**\/*.parquet`,
 * Hive partitions (dt, hour) as columns, and `union_by_name` so files of every schema version
 * read together (a column a file lacks reads as NULL). A table with no file yet is an empty view
 * with the schema's columns, so queries work on a new lake too.
 */
export async function openLake(config: Config, namespace = ''): Promise<{ connection: DuckDBConnection; close(): void }> {
  const duck = await openDuckdb(config);
  const s3 = createS3(config);
  const store = createObjectStore(s3, config.LAKE_BUCKET);
  try {
    for (const table of Object.values(catalog(namespace).tables)) {
      const prefix = `${table.path}/`;
      if (await store.hasAny(prefix)) {
        await duck.connection.run(
          `CREATE OR REPLACE VIEW ${table.view} AS SELECT * FROM read_parquet('s3://${config.LAKE_BUCKET}/${prefix}**/*.parquet', hive_partitioning = true, union_by_name = true)`,
        );
      } else {
        const columns = columnsOf(JSON.parse(readFileSync(join(repoRoot, 'schemas', table.valueSchema), 'utf8')));
        const select = [...columns.map((c) => `NULL::${c.sqlType} AS "${c.name}"`), 'NULL::DATE AS dt', 'NULL::BIGINT AS hour'].join(', ');
        await duck.connection.run(`CREATE OR REPLACE VIEW ${table.view} AS SELECT ${select} WHERE false`);
      }
    }
  } catch (error) {
    duck.close();
    throw error;
  } finally {
    s3.destroy();
  }
  return duck;
}
