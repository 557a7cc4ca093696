import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LakestreamError } from '../../core/errors.ts';
import type { StackContext, StackService } from './context.ts';
import { run } from './install.ts';

/** Must match the DuckDB inside the pinned @duckdb/node-api (1.4.4-r.4). */
export const DUCKDB_VERSION = '1.4.4';
const HTTPFS_WHEEL = 'duckdb-ext-httpfs==1.4.4.20260205';

export const httpfsPath = (ctx: Pick<StackContext, 'config'>) =>
  join(ctx.config.duckdbExtensionDir, `v${DUCKDB_VERSION}`, 'linux_amd64', 'httpfs.duckdb_extension');

/**
 * DuckDB's httpfs extension, which the npm build does not link in. PyPI's duckdb-ext-httpfs wheel
 * carries the signed extension file in DuckDB's own directory layout; we copy it out of the wheel.
 */
export const duckdbHttpfs: StackService = {
  name: 'duckdb-httpfs',

  async install(ctx) {
    const target = httpfsPath(ctx);
    if (existsSync(target)) return;
    ctx.progress(`duckdb-httpfs: fetching ${HTTPFS_WHEEL} from PyPI (first run only)`);
    const work = mkdtempSync(join(tmpdir(), 'lakestream-httpfs-'));
    try {
      await run('duckdb-httpfs', 'python3', ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '-d', work, HTTPFS_WHEEL], {
        progress: ctx.progress,
      });
      const wheel = readdirSync(work).find((file) => file.endsWith('.whl'));
      if (!wheel) throw new LakestreamError('STACK_INSTALL_FAILED', `duckdb-httpfs: pip left no wheel in ${work}`, { context: { service: 'duckdb-httpfs' } });
      await run('duckdb-httpfs', 'python3', ['-m', 'zipfile', '-e', join(work, wheel), join(work, 'wheel')]);
      const inside = join(work, 'wheel', 'duckdb_ext', 'extensions', `v${DUCKDB_VERSION}`, 'linux_amd64', 'httpfs.duckdb_extension');
      mkdirSync(join(target, '..'), { recursive: true });
      copyFileSync(inside, `${target}.part`);
      // the rename keeps a half-copied file from ever looking installed
      renameSync(`${target}.part`, target);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },

  async start() {},

  async check(ctx) {
    if (!existsSync(httpfsPath(ctx))) throw new Error(`missing ${httpfsPath(ctx)}`);
  },

  startTimeoutMs: 1_000,
  daemons: () => [],
  endpoint: (ctx) => httpfsPath(ctx),
};
