import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LakestreamError } from '../../core/errors.ts';
import type { StackContext, StackService } from './context.ts';
import { run } from './install.ts';

/** Must match the DuckDB inside the pinned @duckdb/node-api (1.4.4-r.4). */
export const DUCKDB_VERSION = '1.4.4';
/** PyPI wheels that carry the signed extension files in DuckDB's own directory layout. */
const EXTENSION_WHEELS: Record<string, string> = {
  httpfs: 'duckdb-ext-httpfs==1.4.4.20260205',
  avro: 'duckdb-ext-avro==1.4.4.20260205',
  iceberg: 'duckdb-ext-iceberg==1.4.4.20260205',
};

export const extensionPath = (ctx: Pick<StackContext, 'config'>, name: string) =>
  join(ctx.config.duckdbExtensionDir, `v${DUCKDB_VERSION}`, 'linux_amd64', `${name}.duckdb_extension`);

async function installExtension(ctx: StackContext, name: string, wheelSpec: string): Promise<void> {
  const target = extensionPath(ctx, name);
  if (existsSync(target)) return;
  ctx.progress(`duckdb-extensions: fetching ${wheelSpec} from PyPI (first run only)`);
  const work = mkdtempSync(join(tmpdir(), `lakestream-${name}-`));
  try {
    await run('duckdb-extensions', 'python3', ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '-d', work, wheelSpec], {
      progress: ctx.progress,
    });
    const wheel = readdirSync(work).find((file) => file.endsWith('.whl'));
    if (!wheel) throw new LakestreamError('STACK_INSTALL_FAILED', `duckdb-extensions: pip left no wheel in ${work}`, { context: { service: 'duckdb-extensions' } });
    await run('duckdb-extensions', 'python3', ['-m', 'zipfile', '-e', join(work, wheel), join(work, 'wheel')]);
    const inside = join(work, 'wheel', 'duckdb_ext', 'extensions', `v${DUCKDB_VERSION}`, 'linux_amd64', `${name}.duckdb_extension`);
    mkdirSync(join(target, '..'), { recursive: true });
    copyFileSync(inside, `${target}.part`);
    // the rename keeps a half-copied file from ever looking installed
    renameSync(`${target}.part`, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * DuckDB's httpfs (s3://), avro and iceberg extensions, which the npm build does not link in and
 * cannot download here: copied out of PyPI's wheels into the extension directory that
 * `openDuckdb` loads them from.
 */
export const duckdbExtensions: StackService = {
  name: 'duckdb-extensions',

  async install(ctx) {
    for (const [name, wheel] of Object.entries(EXTENSION_WHEELS)) await installExtension(ctx, name, wheel);
  },

  async start() {},

  async check(ctx) {
    const missing = Object.keys(EXTENSION_WHEELS).filter((name) => !existsSync(extensionPath(ctx, name)));
    if (missing.length) throw new Error(`missing ${missing.map((name) => extensionPath(ctx, name)).join(', ')}`);
  },

  startTimeoutMs: 1_000,
  daemons: () => [],
  endpoint: (ctx) => join(ctx.config.duckdbExtensionDir, `v${DUCKDB_VERSION}`, 'linux_amd64'),
};
