import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { createS3 } from '../../core/s3.ts';
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

function endpoint(ctx: StackContext): { host: string; port: number } {
  const url = new URL(ctx.config.S3_ENDPOINT);
  return { host: url.hostname, port: Number(url.port || 80) };
}

export const minio: StackService = {
  name: 'minio',

  async install(ctx) {
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

  /** The lake bucket exists once the stack is up. */
  async ready(ctx) {
    const s3 = createS3(ctx.config);
    try {
      await s3.send(new HeadBucketCommand({ Bucket: ctx.config.LAKE_BUCKET }));
    } catch {
      await s3.send(new CreateBucketCommand({ Bucket: ctx.config.LAKE_BUCKET }));
    } finally {
      s3.destroy();
    }
  },

  startTimeoutMs: 60_000,
  daemons: () => ['minio'],
  endpoint: (ctx) => `${ctx.config.S3_ENDPOINT} (bucket ${ctx.config.LAKE_BUCKET}, console :${endpoint(ctx).port + 1})`,
};
