import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { LakestreamError, redactedUrl } from '../../core/errors.ts';
import type { StackContext, StackService } from './context.ts';
import { onPath, run } from './install.ts';
import { startDaemon } from './processes.ts';

/**
 * PostgreSQL from Debian's postgresql package, for the product denylist when
 * DENYLIST_STORE=postgres. The server refuses to run as root, so under root it runs as the
 * package's `postgres` user, with its data in a directory that user owns outside the stack's
 * (the stack directory usually sits under a home that user cannot enter).
 */
const POSTGRES_ROOT = '/usr/lib/postgresql';

function binDir(): string | undefined {
  if (!existsSync(POSTGRES_ROOT)) return undefined;
  const versions = readdirSync(POSTGRES_ROOT)
    .filter((version) => existsSync(join(POSTGRES_ROOT, version, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(POSTGRES_ROOT, versions[0]!, 'bin') : undefined;
}

const asRoot = () => process.getuid?.() === 0;

/** Where the cluster's files live: in the stack directory, or for root in one the `postgres` user owns. */
export function postgresDataDir(ctx: Pick<StackContext, 'stackDir'>): string {
  if (!asRoot()) return join(ctx.stackDir, 'postgres');
  return join(tmpdir(), `lakestream-postgres-${createHash('sha256').update(ctx.stackDir).digest('hex').slice(0, 10)}`);
}

/** The server's own user when we are root: `setpriv` execs in place, so the pid file holds the postmaster. */
function asServerUser(command: string, args: string[]): { command: string; args: string[] } {
  return asRoot() ? { command: 'setpriv', args: ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', command, ...args] } : { command, args };
}

function serverUserIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n').find((entry) => entry.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new LakestreamError('STACK_INSTALL_FAILED', 'the postgres user of the postgresql package is missing; reinstall postgresql');
  return { uid: Number(uid), gid: Number(gid) };
}

function endpoint(ctx: StackContext): URL {
  return new URL(ctx.config.POSTGRES_URL);
}

async function query(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Creates `database` on the stack's server unless it exists (owned by the URL's user). */
export async function ensureDatabase(ctx: StackContext, database: string): Promise<void> {
  const url = endpoint(ctx);
  url.pathname = '/postgres';
  const exists = await query(url.toString(), 'SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (exists.rowCount) return;
  try {
    await query(url.toString(), `CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  } catch (error) {
    // a concurrent start created it first
    if ((error as { code?: string }).code !== '42P04') throw error;
  }
}

export const postgres: StackService = {
  name: 'postgres',

  async install(ctx) {
    if (binDir()) return;
    if (!asRoot() || !(await onPath('apt-get'))) {
      throw new LakestreamError('STACK_INSTALL_FAILED', 'PostgreSQL is not installed; install it with your package manager (Debian: apt-get install postgresql)', {
        context: { service: 'postgres' },
      });
    }
    ctx.progress('postgres: installing Debian package postgresql');
    await run('postgres', 'apt-get', ['install', '-y', '-q', 'postgresql'], { env: { DEBIAN_FRONTEND: 'noninteractive' }, progress: ctx.progress });
  },

  async start(ctx) {
    const bin = binDir()!;
    const url = endpoint(ctx);
    const dataDir = postgresDataDir(ctx);
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      // initdb reads the superuser's password from a file, so it never shows in a process list
      const passwordFile = join(tmpdir(), `lakestream-postgres-password-${process.pid}`);
      writeFileSync(passwordFile, `${decodeURIComponent(url.password) || 'lakestream'}\n`, { mode: 0o600 });
      if (asRoot()) {
        const { uid, gid } = serverUserIds();
        chownSync(dataDir, uid, gid);
        chownSync(passwordFile, uid, gid);
      }
      try {
        const initdb = asServerUser(join(bin, 'initdb'), [
          '-D', dataDir,
          '-U', decodeURIComponent(url.username) || 'lakestream',
          `--pwfile=${passwordFile}`,
          '--auth=scram-sha-256',
          '--encoding=UTF8',
          '--no-locale',
        ]);
        await run('postgres', initdb.command, initdb.args, { progress: ctx.progress });
      } finally {
        rmSync(passwordFile, { force: true });
      }
    }
    const server = asServerUser(join(bin, 'postgres'), [
      '-D', dataDir,
      '-c', `listen_addresses=${url.hostname || '127.0.0.1'}`,
      '-c', `port=${url.port || '5432'}`,
      // TCP only: the default socket directory (/var/run/postgresql) belongs to the system's cluster
      '-c', 'unix_socket_directories=',
      '-c', 'shared_buffers=32MB',
      '-c', 'max_connections=50',
      // a development server: a crash may lose the last moments of commits, never corrupt the data
      '-c', 'synchronous_commit=off',
    ]);
    startDaemon(ctx.stackDir, { name: 'postgres', ...server, home: asRoot() ? dataDir : undefined, stopSignal: 'SIGINT' });
  },

  async check(ctx) {
    const url = endpoint(ctx);
    url.pathname = '/postgres';
    await query(url.toString(), 'SELECT 1');
  },

  /** The database of the URL exists once the stack is up. */
  async ready(ctx) {
    await ensureDatabase(ctx, decodeURIComponent(endpoint(ctx).pathname.slice(1)) || 'postgres');
  },

  startTimeoutMs: 30_000,
  daemons: () => ['postgres'],
  endpoint: (ctx) => redactedUrl(ctx.config.POSTGRES_URL),
  wipe: (ctx) => rmSync(postgresDataDir(ctx), { recursive: true, force: true }),
};
