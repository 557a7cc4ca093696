import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { redactedUrl } from '../../core/errors.ts';
import { createRedis, redisFailure } from '../../core/redis.ts';
import { config, unusedPort } from '../helpers.ts';

test('a client of createRedis prints nothing while Redis is unreachable, yet its callers see every error', { timeout: 30_000 }, async () => {
  const url = `redis://127.0.0.1:${await unusedPort()}`;
  const printed: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void printed.push(args);
  const redis = createRedis({ REDIS_URL: url }, { maxRetriesPerRequest: 1 });
  try {
    const seen: Error[] = [];
    redis.on('error', (error: Error) => seen.push(error));
    const rejection = await redis.get('k').then(
      () => assert.fail('a command cannot succeed without a server'),
      (error: unknown) => error as Error,
    );
    assert.deepEqual(printed, [], 'ioredis printed nothing');
    assert.ok(seen.length >= 1 && seen.every((error) => /ECONNREFUSED/.test(error.message)), 'a listener of the caller still gets the errors');
    const failure = redisFailure(redis, url, rejection);
    assert.equal(failure.message, `Redis at ${url} is unreachable: connect ECONNREFUSED ${url.slice('redis://'.length)}`);
    assert.equal(failure.cause, rejection, 'the original rejection stays reachable');
  } finally {
    console.error = original;
    redis.disconnect();
  }
});

test('redisFailure leaves an error of a connected client as it is', { timeout: 30_000 }, async () => {
  const redis = createRedis(config);
  try {
    const error = await redis.call('NO-SUCH-COMMAND').then(
      () => assert.fail('unknown command accepted'),
      (e: unknown) => e as Error,
    );
    assert.equal(redisFailure(redis, config.REDIS_URL, error), error);
  } finally {
    await redis.quit();
  }
});

test('redactedUrl hides the password only', () => {
  assert.equal(redactedUrl('redis://127.0.0.1:6390'), 'redis://127.0.0.1:6390');
  assert.equal(redactedUrl('redis://default:s3cret@cache.internal:6379/2'), 'redis://default:***@cache.internal:6379/2');
});

test('a long-running client logs one line when its established connection is lost and one when it is back', { timeout: 60_000 }, async () => {
  // A TCP relay to the real Redis that the test can take away and bring back on the same port.
  const target = new URL(config.REDIS_URL);
  const sockets = new Set<Socket>();
  const relay = (): Server =>
    createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => socket.destroy());
        socket.on('close', () => sockets.delete(socket));
      }
      client.pipe(upstream).pipe(client);
    });
  let server = relay();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `redis://127.0.0.1:${port}`;

  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).includes('"component":"redis"')) lines.push(String(chunk));
    return (write as (...args: unknown[]) => boolean).call(process.stderr, chunk, ...rest);
  }) as typeof process.stderr.write;
  const redis = createRedis({ REDIS_URL: url }, { retryStrategy: () => 100 });
  try {
    assert.equal(await redis.ping(), 'PONG');
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of sockets) socket.destroy();
    await closed;
    await waitUntil(() => lines.length >= 1 && redis.status !== 'ready');
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // several failed reconnects
    assert.equal(lines.length, 1, lines.join(''));
    assert.match(lines[0]!, new RegExp(`"level":"warn".*"msg":"connection lost, reconnecting".*"redis":"${url}".*"error":"[^"]*ECONN`));

    server = relay();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    // A command queued now could meet a reconnect attempt begun before the relay listened; ioredis
    // flushes its offline queue every sixth failed attempt, so ping once the client is back.
    await waitUntil(() => redis.status === 'ready');
    assert.equal(await redis.ping(), 'PONG');
    assert.equal(lines.length, 2, lines.join(''));
    assert.match(lines[1]!, /"level":"info".*"msg":"reconnected"/);
  } finally {
    process.stderr.write = write;
    redis.disconnect();
    for (const socket of sockets) socket.destroy();
    server.close();
  }
});

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
