import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { Config } from './config.ts';
import { LakestreamError } from './errors.ts';

type DuckdbSettings = Pick<
  Config,
  'S3_ENDPOINT' | 'S3_REGION' | 'S3_ACCESS_KEY_ID' | 'S3_SECRET_ACCESS_KEY' | 'duckdbExtensionDir'
>;

/** Must match the DuckDB inside the pinned @duckdb/node-api. */
const DUCKDB_VERSION = '1.4.4';

/**
 * Loads an extension from the file `stack:up` put in the extension directory. By name, DuckDB
 * would try to install iceberg's avro dependency from its extension site, which is unreachable.
 */
export async function loadExtension(connection: DuckDBConnection, config: Pick<Config, 'duckdbExtensionDir'>, name: string): Promise<void> {
  const file = `${config.duckdbExtensionDir}/v${DUCKDB_VERSION}/linux_amd64/${name}.duckdb_extension`;
  try {
    await connection.run(`LOAD ${sqlString(file)}`);
  } catch (cause) {
    throw new LakestreamError('DUCKDB_ERROR', `DuckDB could not load ${name} from ${file}; run \`pnpm run stack:up\` to install it`, {
      cause,
      context: { extensionDir: config.duckdbExtensionDir },
    });
  }
}

/** A SQL string literal. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A SQL list of string literals (`['a', 'b']`), as read_parquet takes its files. */
export function sqlList(values: string[]): string {
  return `[${values.map(sqlString).join(', ')}]`;
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
    await loadExtension(connection, config, 'httpfs');
  } catch (error) {
    connection.closeSync();
    throw error;
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
