import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createRegistry, deleteSubject, registerAvro } from '../../core/registry.ts';
import { config, onCleanup, runCliFile, uniqueName, unusedPort } from '../helpers.ts';

/** Runs `pnpm run producer -- transactions …` as node itself, with `env` on top of ours. */
const producer = (args: string[], env: Record<string, string>) => runCliFile('ingest/cli.ts', ['transactions', ...args], env);

test('the producer names an unreachable schema registry instead of asking for infra:apply', { timeout: 90_000 }, async () => {
  const port = await unusedPort();
  const url = `http://127.0.0.1:${port}/apis/ccompat/v7`;
  const result = await producer(['--count', '10'], { SCHEMA_REGISTRY_URL: url });
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stderr.trim(), `producer: schema registry at ${url} is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
  assert.ok(result.ms < 20_000, `failed after ${result.ms} ms`);
});

test('the producer calls a registry answering 5xx unreachable, with the status', { timeout: 90_000 }, async (t) => {
  // A real HTTP server standing in for a registry whose backend is down.
  const server: Server = createServer((_request, response) => {
    response.writeHead(503, { 'content-type': 'text/plain' });
    response.end('backend storage unavailable');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(t, () => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const result = await producer(['--count', '10'], { SCHEMA_REGISTRY_URL: url });
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stderr.trim(), `producer: schema registry at ${url} is unreachable: answered 503: backend storage unavailable`);
});

test('the producer still asks for infra:apply when the registry answers that the subject does not exist', { timeout: 90_000 }, async () => {
  const topic = uniqueName('no-schema');
  const result = await producer(['--count', '10', '--topic', topic], {});
  assert.equal(result.status, 1, result.stderr);
  assert.equal(result.stderr.trim(), `producer: no schema registered for ${topic}-value at ${config.SCHEMA_REGISTRY_URL}; run \`pnpm run infra:apply\` first`);
});

test('the producer names the Kafka brokers it could not reach, well before librdkafka gives up by itself', { timeout: 90_000 }, async (t) => {
  // The registry is up and knows the subject, so the only thing missing is Kafka.
  const topic = uniqueName('no-kafka');
  await registerAvro(createRegistry(config), `${topic}-value`, readFileSync(join(repoRoot, 'schemas', 'transactions-value.avsc'), 'utf8'));
  onCleanup(t, () => deleteSubject(config.SCHEMA_REGISTRY_URL, `${topic}-value`));
  const brokers = `127.0.0.1:${await unusedPort()}`;
  const result = await producer(['--count', '10', '--topic', topic], { KAFKA_BROKERS: brokers });
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr.trim(), new RegExp(`^producer: Kafka at ${brokers} is unreachable: [^\\n]+$`));
  assert.ok(result.ms < 20_000, `failed after ${result.ms} ms`);
});
