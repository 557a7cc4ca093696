import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { DuckDBConnection } from '@duckdb/node-api';
import { repoRoot, type Config } from './config.ts';
import { openDuckdb } from './duckdb.ts';
import { createS3 } from './s3.ts';
import { columnsOf } from '../sinks/lake/parquet.ts';

/** The lake tables: where each lives under the bucket and the schema that describes it. */
export const lakeTables = [
  { view: 'transactions', path: 'transactions', schema: 'transactions-value.avsc' },
  { view: 'user_transaction_counts', path: 'features/user_transaction_counts', schema: 'user-transaction-counts-value.avsc' },
] as const;

/**
 * DuckDB with one view per lake table over `s3://<bucket>/<namespace>/<path>/**\/*.parquet`,
 * Hive partitions (dt, hour) as columns, and `union_by_name` so files of every schema version
 * read together (a column a file lacks reads as NULL). A table with no file yet is an empty view
 * with the schema's columns, so queries work on a new lake too.
 */
export async function openLake(config: Config, namespace = ''): Promise<{ connection: DuckDBConnection; close(): void }> {
  const duck = await openDuckdb(config);
  const s3 = createS3(config);
  try {
    for (const table of lakeTables) {
      const prefix = namespace ? `${namespace}/${table.path}/` : `${table.path}/`;
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.LAKE_BUCKET, Prefix: prefix, MaxKeys: 1 }));
      if (listed.KeyCount) {
        await duck.connection.run(
          `CREATE OR REPLACE VIEW ${table.view} AS SELECT * FROM read_parquet('s3://${config.LAKE_BUCKET}/${prefix}**/*.parquet', hive_partitioning = true, union_by_name = true)`,
        );
      } else {
        const columns = columnsOf(JSON.parse(readFileSync(join(repoRoot, 'schemas', table.schema), 'utf8')));
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
