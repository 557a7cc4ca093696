import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { Config } from './config.ts';
import { LakestreamError } from './errors.ts';

type DuckdbSettings = Pick<
  Config,
  'S3_ENDPOINT' | 'S3_REGION' | 'S3_ACCESS_KEY_ID' | 'S3_SECRET_ACCESS_KEY' | 'duckdbExtensionDir'
>;

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * Opens an in-memory DuckDB that reads `s3://` from the configured endpoint. httpfs is not
 * linked into the npm build, so it is loaded from the extension directory that `stack:up`
 * fills; auto-install stays off because extension downloads are not reachable here.
 */
export async function openDuckdb(
  config: DuckdbSettings,
  settings: Record<string, string> = {},
): Promise<{ connection: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:', {
    extension_directory: config.duckdbExtensionDir,
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'true',
    ...settings,
  });
  const connection = await instance.connect();
  try {
    await connection.run('LOAD httpfs');
  } catch (cause) {
    connection.closeSync();
    throw new LakestreamError(
      'DUCKDB_ERROR',
      `DuckDB could not load httpfs from ${config.duckdbExtensionDir}; run \`pnpm run stack:up\` to install it`,
      { cause, context: { extensionDir: config.duckdbExtensionDir } },
    );
  }
  const endpoint = new URL(config.S3_ENDPOINT);
  await connection.run(`CREATE OR REPLACE SECRET lake_s3 (
    TYPE s3,
    KEY_ID ${sqlString(config.S3_ACCESS_KEY_ID)},
    SECRET ${sqlString(config.S3_SECRET_ACCESS_KEY)},
    REGION ${sqlString(config.S3_REGION)},
    ENDPOINT ${sqlString(endpoint.host)},
    URL_STYLE 'path',
    USE_SSL ${endpoint.protocol === 'https:'}
  )`);
  return {
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}
