import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { createS3 } from '../../core/s3.ts';
import { catalog } from '../../platform/catalog.ts';
import { applyS3Access } from '../s3-access.ts';
import type { StackContext, StackService } from './context.ts';
import { isInstalled, markInstalled, run } from './install.ts';
import { startDaemon } from './processes.ts';

/**
 * MinIO is published as source only, so it is built with `go install` from the Go module proxy
 * into the cache (about 4 minutes cold, 107 MiB binary). The proxy serves MinIO's final commit
 * (2026-02-12, after upstream archived the repository) as a pseudo-version and refuses the
 * RELEASE.* tags, so that commit is the pin.
 */
export const MINIO_MODULE = 'github.com/minio/minio';
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';

const installDir = (ctx: Pick<StackContext, 'cacheDir'>) => join(ctx.cacheDir, 'minio', MINIO_VERSION);
const binary = (ctx: Pick<StackContext, 'cacheDir'>) => join(installDir(ctx), 'bin', 'minio');

async function installMinioServer(ctx: StackContext): Promise<void> {
  const dir = installDir(ctx);
  if (isInstalled(dir) && existsSync(binary(ctx))) return;
  ctx.progress(`minio: building ${MINIO_MODULE}@${MINIO_VERSION} with go install (first run only, a few minutes)`);
  mkdirSync(dir, { recursive: true });
  // -v names each package as it compiles: the progress of a build that is otherwise silent
  await run('minio', 'go', ['install', '-v', '-trimpath', '-ldflags=-s -w', `${MINIO_MODULE}@${MINIO_VERSION}`], {
    env: { GOBIN: join(dir, 'bin'), GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
    progress: ctx.progress,
  });
  markInstalled(dir);
}

/**
 * The admin tool for users and policies (infra/stack/minio-admin, built with madmin-go at the
 * version the MinIO server pins, so its modules are already in the Go module cache): the path of
 * its binary in the cache, next to the server's.
 */
/** Secrets of the stack's S3 users (`lakestream-jobs`, `lakestream-reader`), a file each. */
export const s3UsersDir = (ctx: Pick<StackContext, 'stackDir'>) => join(ctx.stackDir, 'secrets', 's3-users');

export const minioAdminBinary = (cacheDir: string) => join(installDir({ cacheDir }), 'bin', 'minio-admin');

const minioAdminSource = fileURLToPath(new URL('./minio-admin', import.meta.url));

/** A digest of the tool's source: an edit to it rebuilds the binary in existing caches. */
function minioAdminDigest(): string {
  const hash = createHash('sha256');
  for (const file of ['main.go', 'go.mod', 'go.sum']) hash.update(`${file}\0`).update(readFileSync(join(minioAdminSource, file)));
  return hash.digest('hex').slice(0, 16);
}

/** Builds minio-admin unless this source's build is already in the cache (marker per source digest). */
async function installMinioAdmin(ctx: StackContext): Promise<void> {
  const markers = join(installDir(ctx), '.minio-admin');
  const marker = join(markers, minioAdminDigest());
  const output = minioAdminBinary(ctx.cacheDir);
  if (isInstalled(marker) && existsSync(output)) return;
  ctx.progress('minio: building minio-admin (users and policies; about 30 s the first time)');
  rmSync(markers, { recursive: true, force: true });
  mkdirSync(marker, { recursive: true });
  // the tool is its own Go module, so it builds from its folder (`go build <dir>` resolves the module
  // from the working directory); -buildvcs=false: no git stamp, so a dirty or foreign checkout builds too
  await run('minio-admin', 'go', ['build', '-trimpath', '-buildvcs=false', '-ldflags=-s -w', '-o', output, '.'], {
    cwd: minioAdminSource,
    env: { GOTOOLCHAIN: 'local', CGO_ENABLED: '0' },
  });
  markInstalled(marker);
}

function endpoint(ctx: StackContext): { host: string; port: number } {
  const url = new URL(ctx.config.S3_ENDPOINT);
  return { host: url.hostname, port: Number(url.port || 80) };
}

export const minio: StackService = {
  name: 'minio',

  async install(ctx) {
    await installMinioServer(ctx);
    await installMinioAdmin(ctx);
  },

  async start(ctx) {
    const { host, port } = endpoint(ctx);
    const dataDir = join(ctx.stackDir, 'minio');
    mkdirSync(dataDir, { recursive: true });
    startDaemon(ctx.stackDir, {
      name: 'minio',
      command: binary(ctx),
      args: ['server', dataDir, '--address', `${host}:${port}`, '--console-address', `${host}:${port + 1}`, '--quiet'],
      env: {
        MINIO_ROOT_USER: ctx.config.S3_ACCESS_KEY_ID,
        MINIO_ROOT_PASSWORD: ctx.config.S3_SECRET_ACCESS_KEY,
        MINIO_UPDATE: 'off',
        MINIO_CALLHOME_ENABLE: 'off',
        MINIO_SCANNER_SPEED: 'slowest',
      },
    });
  },

  async check(ctx) {
    const response = await fetch(`${ctx.config.S3_ENDPOINT.replace(/\/+$/, '')}/minio/health/ready`, { signal: AbortSignal.timeout(3_000) });
    if (response.status !== 200) throw new Error(`/minio/health/ready answered ${response.status}`);
  },

  /** The lake bucket exists once the stack is up, and so do the jobs' and readers' S3 users. */
  async ready(ctx) {
    const s3 = createS3(ctx.config);
    try {
      await s3.send(new HeadBucketCommand({ Bucket: ctx.config.LAKE_BUCKET }));
    } catch {
      await s3.send(new CreateBucketCommand({ Bucket: ctx.config.LAKE_BUCKET }));
    } finally {
      s3.destroy();
    }
    await applyS3Access(ctx.config, catalog(''), s3UsersDir(ctx));
  },

  startTimeoutMs: 60_000,
  daemons: () => ['minio'],
  endpoint: (ctx) => `${ctx.config.S3_ENDPOINT} (bucket ${ctx.config.LAKE_BUCKET}, console :${endpoint(ctx).port + 1})`,
};
