import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('pnpm run features with Redis unreachable: one line naming the URL, no ioredis trace, a quick non-zero exit', { timeout: 60_000 }, async () => {
  const port = await unusedPort();
  const url = `redis://127.0.0.1:${port}`;
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'sinks', 'redis', 'features-cli.ts'), 'user', '1', '2'], {
    cwd: repoRoot,
    env: { ...process.env, REDIS_URL: url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(killer);
  const ms = Date.now() - started;

  assert.equal(status, 1, stderr);
  assert.doesNotMatch(stderr, /Unhandled error event/);
  assert.equal(stderr.trim(), `features: Redis at ${url} is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
  assert.equal(stdout, '');
  // tsx compiling the CLI takes part of this; the failure itself is about a second
  assert.ok(ms < 10_000, `exited after ${ms} ms`);
});
