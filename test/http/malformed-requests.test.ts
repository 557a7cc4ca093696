import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { repoRoot } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { serveMetrics } from '../../core/metrics.ts';
import { onCleanup, uniqueName } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

/**
 * Every HTTP server of the platform, fed what a careless or hostile client sends before any
 * authentication: each answers with a well-formed HTTP status (a 4xx for what it cannot parse),
 * its process never exits, and a refused request publishes nothing.
 */
interface Served {
  url: URL;
  alive(): boolean;
  output(): string;
}

/** Runs a server's CLI as its own process, so a crash is an exit and not this test's. */
async function spawnServer(t: TestContext, file: string, args: string[]): Promise<Served> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, file), '--port', '0', ...args], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  onCleanup(t, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1];
    if (url) return { url: new URL(url), alive: () => child.exitCode === null && child.signalCode === null, output: () => output };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${file} did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface RawRequest {
  method: string;
  /** Sent as it is, no normalisation (curl --path-as-is). */
  path: string;
  headers: Array<[string, string]>;
  body: Buffer;
  /** Declare a longer body than is sent, then close the sending side. */
  truncate: boolean;
  /** Send the body in this many pieces, a little apart. */
  pieces: number;
}

/** One request over a fresh socket; resolves with the status line's code, or undefined if the server closed without answering. */
function send(url: URL, request: RawRequest): Promise<{ status: number | undefined; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let received = Buffer.alloc(0);
    socket.setTimeout(15_000, () => socket.destroy(new Error(`no answer within 15 s to ${request.method} ${request.path}`)));
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? undefined : reject(error)));
    socket.on('close', () => {
      const head = received.subarray(0, 200).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3}) /.exec(head)?.[1];
      resolve({ status: status === undefined ? undefined : Number(status), head });
    });
    socket.on('connect', async () => {
      const declared = request.truncate ? request.body.length + 10 : request.body.length;
      const lines = [`${request.method} ${request.path} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close', `Content-Length: ${declared}`, ...request.headers.map(([k, v]) => `${k}: ${v}`)];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
      const size = Math.ceil(request.body.length / request.pieces) || 1;
      for (let at = 0; at < request.body.length && !socket.destroyed; at += size) {
        socket.write(request.body.subarray(at, at + size));
        if (request.pieces > 1) await new Promise((r) => setTimeout(r, 20));
      }
      // a truncated body ends the sending side early; a complete one waits for the answer
      if (request.truncate) socket.end();
    });
  });
}

const plain = (method: string, path: string, body = ''): RawRequest => ({ method, path, headers: [['Content-Type', 'application/json']], body: Buffer.from(body), truncate: false, pieces: 1 });

async function assertServing(served: Served): Promise<void> {
  assert.ok(served.alive(), `the server exited: ${served.output().slice(-2_000)}`);
  const health = await send(served.url, plain('GET', '/healthz'));
  assert.equal(health.status, 200, health.head);
}

const reproductions: RawRequest[] = [
  plain('POST', '//'),
  plain('GET', '//'),
  plain('POST', '//x/y'),
  plain('POST', '/v1/topics/%E0/records', '{}'),
  plain('POST', '/v1/topics/%/records', '{}'),
  plain('GET', '/%E0'),
  plain('GET', '/%'),
  plain('GET', '/constructor'),
  plain('GET', '/__proto__'),
];

const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'BREW', 'get');
const pathPart = fc.oneof(
  fc.constantFrom('', '/', '//', 'v1', 'topics', 'orders', 'records', 'get-online-features', 'features', 'user', 'healthz', 'metrics', 'openapi.json', 'api', 'snapshot', 'events', '..', '.', '%', '%E0', '%FF%FE', '%2F', '%00', '?', '#', '?x=%E0', ';', '__proto__', 'constructor', 'toString', 'hasOwnProperty'),
  fc.string({ unit: fc.constantFrom('a', '/', '%', 'E', '0', '9', '.', '?', '&', '=', '~', '@', ':', '+', '[', ']') , maxLength: 12 }),
);
const path = fc.oneof(
  fc.array(pathPart, { minLength: 1, maxLength: 6 }).map((parts) => `/${parts.join('/')}`),
  fc.constantFrom('*', 'http://evil.example/x', '//', '/v1/topics/%E0/records', '/v1/topics/orders/records', '/v1/topics//records', '/v1/topics/%2E%2E/records'),
);
const headerName = fc.constantFrom('Content-Type', 'Idempotency-Key', 'Authorization', 'X-API-Key', 'Accept', 'Transfer-Encoding', 'X-Forwarded-For', 'Cookie');
const headerValue = fc.oneof(
  fc.constantFrom('application/json', 'text/plain', 'Bearer ', 'Bearer x', 'chunked', '', '\u00ff', 'a'.repeat(300)),
  fc.string({ unit: fc.constantFrom('a', ' ', '"', ';', '=', ',', 'é'), maxLength: 20 }),
);
const body = fc.oneof(
  fc.constantFrom('', '{}', '[]', 'null', '{"order_id":', '[{"x":1}]', '{"a":"\\ud800"}', '{'.repeat(200), '"'),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
);
const request = fc.record({
  method,
  path,
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 3 }),
  body: body.map((text) => Buffer.from(text)),
  truncate: fc.boolean(),
  pieces: fc.constantFrom(1, 1, 1, 3),
});

async function fuzz(served: Served, runs: number): Promise<number> {
  let answered = 0;
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      const { status, head } = await send(served.url, r);
      assert.ok(served.alive(), `the server exited after ${r.method} ${r.path}: ${served.output().slice(-2_000)}`);
      // a truncated body may be dropped with the connection; any answer must be a real status
      if (status === undefined) assert.ok(r.truncate || head === '', `not an HTTP answer to ${r.method} ${r.path}: ${JSON.stringify(head)}`);
      else {
        answered++;
        assert.ok(status >= 200 && status <= 599, `status ${status}`);
        if (status >= 500) assert.ok(status === 503 || status === 501, `${r.method} ${r.path} got ${status}: ${head}`);
      }
    }),
    { numRuns: runs, seed: 20261203, endOnFailure: true },
  );
  return answered;
}

test('http: the gateway answers malformed requests with a 4xx, keeps serving, and publishes nothing for them', { timeout: 300_000 }, async (t) => {
  const { namespace, names, admin } = await setupPipeline(t, 'http-gateway');
  const gateway = await spawnServer(t, 'gateway/cli.ts', ['--namespace', namespace]);
  for (const r of reproductions) {
    const { status, head } = await send(gateway.url, r);
    assert.ok(status !== undefined && status >= 400 && status < 500, `${r.method} ${r.path}: ${head}`);
    await assertServing(gateway);
  }
  const answered = await fuzz(gateway, 400);
  assert.ok(answered > 300, `${answered} of 400 fuzzed requests answered`);
  await assertServing(gateway);
  const topics = [names.topic.orders, names.topic.inputProducts, names.topic.transactions, names.topic.shopEvents];
  const ends = await admin.listOffsets({ topics: topics.map((name) => ({ name, partitions: Array.from({ length: 6 }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })) })) });
  const published = Object.fromEntries(ends.map((topic) => [topic.name, topic.partitions.reduce((sum, p) => sum + Number(p.offset), 0)]));
  assert.deepEqual(published, Object.fromEntries(topics.map((name) => [name, 0])));
});

test('http: the dashboard answers malformed requests with a 4xx and keeps serving', { timeout: 300_000 }, async (t) => {
  const { namespace } = await setupPipeline(t, 'http-dashboard');
  const dashboard = await spawnServer(t, 'dashboard/cli.ts', ['--namespace', namespace]);
  for (const r of reproductions) {
    const { status, head } = await send(dashboard.url, r);
    assert.ok(status !== undefined && status >= 400 && status < 500, `${r.method} ${r.path}: ${head}`);
    await assertServing(dashboard);
  }
  await fuzz(dashboard, 300);
  await assertServing(dashboard);
});

test('http: the feature server answers malformed requests with a 4xx and keeps serving', { timeout: 300_000 }, async (t) => {
  const feature = await spawnServer(t, 'features/server-cli.ts', ['--namespace', uniqueName('http-features')]);
  for (const r of [...reproductions, plain('POST', '/get-online-features', '{"features": ['), plain('GET', '/v1/features/%E0/1'), plain('GET', '/v1/features/user/%')]) {
    const { status, head } = await send(feature.url, r);
    assert.ok(status !== undefined && status >= 400 && status < 500, `${r.method} ${r.path}: ${head}`);
    await assertServing(feature);
  }
  await fuzz(feature, 300);
  await assertServing(feature);
});

test('http: the metrics endpoint answers malformed requests and keeps serving', { timeout: 120_000 }, async (t) => {
  const { url, server } = await serveMetrics(0, createLogger('http-test'), '127.0.0.1');
  onCleanup(t, () => new Promise((resolve) => server.close(resolve)));
  const served: Served = { url: new URL(url.replace('/metrics', '/')), alive: () => server.listening, output: () => '' };
  for (const r of reproductions) {
    const { status, head } = await send(served.url, r);
    assert.ok(status !== undefined && status >= 400 && status < 500, `${r.method} ${r.path}: ${head}`);
  }
  await fuzz(served, 200);
  await assertServing(served);
});
