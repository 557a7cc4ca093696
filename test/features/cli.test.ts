import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCliFile, unusedPort } from '../helpers.ts';

test('pnpm run features with Redis unreachable: one line naming the URL, no ioredis trace, a quick non-zero exit', { timeout: 60_000 }, async () => {
  const port = await unusedPort();
  const url = `redis://127.0.0.1:${port}`;
  const { status, stdout, stderr, ms } = await runCliFile('features/cli.ts', ['user', '1', '2'], { REDIS_URL: url }, 30_000);

  assert.equal(status, 1, stderr);
  assert.doesNotMatch(stderr, /Unhandled error event/);
  assert.equal(stderr.trim(), `features: Redis at ${url} is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
  assert.equal(stdout, '');
  // tsx compiling the CLI takes part of this; the failure itself is about a second
  assert.ok(ms < 10_000, `exited after ${ms} ms`);
});
