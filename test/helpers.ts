import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Admin } from '@platformatic/kafka';
import type { Redis } from 'ioredis';
import { catalog } from '../platform/catalog.ts';
import { loadConfig, repoRoot, type Config } from '../core/config.ts';
import { createClientContext } from '../platform/context.ts';
import { createAdmin } from '../core/kafka.ts';
import { deleteSubject } from '../core/registry.ts';
import { createS3 } from '../core/s3.ts';
import { dropLakeNamespace } from '../infra/namespace.ts';

/** Integration tests run against the local stack (or whatever the environment points at). */
export const config: Config = loadConfig();

const cleanups = new WeakMap<TestContext, Array<() => unknown>>();

/**
 * Registers `fn` to run after the test, in reverse order of registration (what was opened last
 * closes first), each one even if an earlier one failed.
 */
export function onCleanup(t: TestContext, fn: () => unknown): void {
  let stack = cleanups.get(t);
  if (!stack) {
    const fresh: Array<() => unknown> = [];
    cleanups.set(t, fresh);
    stack = fresh;
    t.after(async () => {
      const errors: unknown[] = [];
      for (const cleanup of fresh.reverse()) {
        try {
          await cleanup();
        } catch (error) {
          errors.push(error);
        }
      }
      if (errors.length) throw errors[0];
    });
  }
  stack.push(fn);
}

/** A name no other test run uses: topics, bucket prefixes and Redis key prefixes derive from it. */
export function uniqueName(label: string): string {
  return `test-${label}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function testAdmin(t: TestContext): Admin {
  const admin = createAdmin(config, 'lakestream-test');
  onCleanup(t, () => admin.close());
  return admin;
}

export function testS3(t: TestContext): S3Client {
  const s3 = createS3(config);
  onCleanup(t, () => s3.destroy());
  return s3;
}

/** Deletes the topics and their value subjects after the test. */
export function cleanupTopics(t: TestContext, admin: Admin, topics: string[]): void {
  onCleanup(t, async () => {
    const existing = new Set(await admin.listTopics());
    const ours = topics.filter((topic) => existing.has(topic));
    if (ours.length) await admin.deleteTopics({ topics: ours });
    for (const topic of topics) await deleteSubject(config.SCHEMA_REGISTRY_URL, `${topic}-value`);
  });
}

/** Deletes every object under `prefix` of the lake bucket after the test. */
export function cleanupPrefix(t: TestContext, s3: S3Client, prefix: string): void {
  onCleanup(t, async () => {
    for (;;) {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.LAKE_BUCKET, Prefix: prefix }));
      const keys = (listed.Contents ?? []).map((object) => ({ Key: object.Key! }));
      if (!keys.length) return;
      await s3.send(new DeleteObjectsCommand({ Bucket: config.LAKE_BUCKET, Delete: { Objects: keys } }));
    }
  });
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000, intervalMs = 1_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface JobProcess {
  child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  kill9(): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  terminate(): Promise<number | null>;
}

/** Runs pipeline jobs as a separate process (`pnpm run job -- …`), so a test can kill -9 it. */
export function spawnJobs(t: TestContext, jobs: string[], args: string[], env: NodeJS.ProcessEnv = {}): JobProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'pipeline', 'cli.ts'), ...jobs, ...args], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-200_000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const handle: JobProcess = {
    child,
    output: () => output,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async terminate() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  onCleanup(t, () => handle.kill9());
  return handle;
}

/** Deletes the Redis keys that start with `prefix` after the test. */
export function cleanupRedisPrefix(t: TestContext, redis: Redis, prefix: string): void {
  onCleanup(t, async () => {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  });
}

/** A port nothing listens on: bound by the OS for us, then released. */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs one of the project's CLIs as `node --import tsx <file> …` (no pnpm in between), with `env`
 * on top of ours; killed after `timeoutMs`. Resolves with its exit status, output and duration.
 */
export function runCliFile(
  file: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  // monotonic: a step of the wall clock (NTP) must not make a command look slow
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, file), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (status) => {
      clearTimeout(killer);
      resolve({ status, stdout, stderr, ms: Math.round(performance.now() - started) });
    }),
  );
}

/**
 * A namespace of its own for a test that works on lake tables directly: a client context, the
 * catalog resolved under it, and cleanup of its Iceberg tables (first) and its S3 prefix.
 */
export function lakeNamespace(t: TestContext, label: string) {
  const namespace = uniqueName(label);
  const context = createClientContext(config, { namespace });
  onCleanup(t, () => context.close());
  cleanupPrefix(t, testS3(t), `${namespace}/`);
  // cleanups run last-registered first: the catalog entries go before the files they point at
  onCleanup(t, () => dropLakeNamespace(config, namespace).catch(() => {}));
  return { namespace, names: catalog(namespace), context, lake: context.lakeTables() };
}
