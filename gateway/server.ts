import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Admin } from '@platformatic/kafka';
import type { Type } from 'avsc';
import { avroCodec, type AvroCodec } from '../core/avro.ts';
import { topicDeclarations, type TopicDeclaration } from '../platform/catalog.ts';
import type { ClientContext } from '../platform/context.ts';
import { HttpError, apiKeyCheck, createGuardedServer, decodePathSegment, readJsonBody, requestPath } from '../core/http.ts';
import { errorMessage, redactedUrl } from '../core/errors.ts';
import { createAdmin } from '../core/kafka.ts';
import { createGroupCommitter, isOutcomeUnknown } from '../core/group-commit.ts';
import type { OutgoingMessage } from '../core/kafka-producer.ts';
import type { Logger } from '../core/log.ts';
import { metrics, registry as metricsRegistry, secondsSince } from '../core/metrics.ts';
import { fingerprintOf, idempotencyStore, isIndeterminate, validIdempotencyKey, type RecordOutcome } from './idempotency.ts';
import { openApiDocument } from './openapi.ts';
import { checkRecord, type FieldError } from './records.ts';
import { withTimeout } from '../core/async.ts';

const here = dirname(fileURLToPath(import.meta.url));

export interface ApiKey {
  client: string;
  /** Topics (un-namespaced names) the key may publish to; `*` for every gateway topic. */
  topics: string[];
}

export interface GatewayOptions {
  port: number;
  host: string;
  /** Largest request body accepted (413 beyond). */
  maxBodyBytes: number;
  /** Most records in one request (413 beyond). */
  maxRecords: number;
  /** How long a request may wait for Kafka's acknowledgement before it gets 503. */
  ackTimeoutMs: number;
  /** API keys by key; none: the gateway is open. */
  apiKeys?: Map<string, ApiKey>;
  log: Logger;
}

export interface Gateway {
  url: string;
  close(): Promise<void>;
}

interface GatewayTopic {
  /** As clients name it: `orders`. */
  name: string;
  /** As Kafka knows it: `<namespace>.orders`. */
  kafkaName: string;
  declaration: TopicDeclaration;
  codec?: AvroCodec;
}

const RETRY_AFTER_S = 5;

interface Answer {
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/**
 * HTTP → Kafka. `POST /v1/topics/{topic}/records` takes one JSON record or an array; every record
 * is checked against the topic's registered Avro schema and its business rules before anything is
 * sent, so a request is published whole or not at all (400 lists each bad record's fields). Valid
 * records are produced as Avro in Kafka transactions (acks=all; requests arriving while a commit
 * runs share the next one) and the answer gives each one's partition and offset. No 200 before
 * the commit: a Kafka that does not commit within `ackTimeoutMs` gets 503 with Retry-After. A
 * transaction that failed is aborted, so its records are surely not published; only a commit
 * whose answer was lost leaves them indeterminate. A plain retry after a 503 may publish a record
 * twice (a commit can land after the client was answered); a retry with the same
 * `Idempotency-Key` cannot: the gateway records in Redis what Kafka finally committed for that key.
 */
export async function startGateway(context: ClientContext, options: GatewayOptions): Promise<Gateway> {
  const { config, catalog: names } = context;
  const topics = new Map<string, GatewayTopic>(
    (Object.entries(topicDeclarations) as Array<[keyof typeof topicDeclarations, TopicDeclaration]>)
      .filter(([, declaration]) => declaration.gateway)
      .map(([id, declaration]) => [declaration.name, { name: declaration.name, kafkaName: names.topic[id], declaration }]),
  );
  const schemaRegistry = context.registry;
  // Transactions, not only idempotence: librdkafka's idempotent producer can store an
  // acknowledged record twice after an epoch bump (core/group-commit.ts, 0018). Each request
  // waits for a commit, so linger 1 ms: the commit's round trip is the wait that groups requests.
  // One transactional id per process, so gateways side by side do not fence each other.
  const producer = await createGroupCommitter(config, {
    transactionalId: `${names.group('gateway')}-${randomUUID().slice(0, 8)}`,
    positions: true,
    trackBrokers: true,
    lingerMs: 1,
    deliveryTimeoutMs: options.ackTimeoutMs,
    log: options.log,
  });
  let admin: Admin | undefined;
  // a pending claim outlives any send (delivery timeout, then the answer's grace)
  const idempotency = idempotencyStore(() => context.redis(), options.ackTimeoutMs * 2 + 30_000);
  const retryAfter = { 'retry-after': String(RETRY_AFTER_S) };
  const keyGrant = options.apiKeys ? apiKeyCheck(options.apiKeys) : undefined;
  const pages: Record<string, { file: string; type: string }> = {
    '/': { file: join(here, 'public', 'order.html'), type: 'text/html; charset=utf-8' },
    '/order.js': { file: join(here, 'public', 'order.js'), type: 'text/javascript; charset=utf-8' },
  };

  async function codecOf(topic: GatewayTopic): Promise<AvroCodec> {
    if (!topic.codec) {
      try {
        topic.codec = await avroCodec(schemaRegistry, await schemaRegistry.getLatestSchemaId(`${topic.kafkaName}-value`));
      } catch (error) {
        throw new HttpError(503, `the schema of ${topic.name} could not be read from the schema registry: ${errorMessage(error)}`, {}, { 'retry-after': String(RETRY_AFTER_S) });
      }
    }
    return topic.codec;
  }

  /** The key's client (undefined for an open gateway); 401 without a known key. Keys are compared by digest, in constant time. */
  function authorise(request: IncomingMessage, topic: GatewayTopic): string | undefined {
    if (!keyGrant) return undefined;
    const grant = keyGrant(request);
    if (!grant.topics.includes('*') && !grant.topics.includes(topic.name)) {
      throw new HttpError(403, `API key of ${grant.client} may not publish to ${topic.name} (it may publish to ${grant.topics.join(', ') || 'nothing'})`);
    }
    return grant.client;
  }

  async function publish(request: IncomingMessage, topicName: string): Promise<Answer> {
    const topic = topics.get(topicName);
    if (options.apiKeys && !topic) authorise(request, { name: topicName } as GatewayTopic);
    if (!topic) throw new HttpError(404, `no topic ${topicName} takes records over HTTP; topics: ${[...topics.keys()].join(', ')}`);
    const client = authorise(request, topic);
    const idempotencyKey = request.headers['idempotency-key'] as string | undefined;
    if (idempotencyKey !== undefined && !validIdempotencyKey(idempotencyKey)) throw new HttpError(400, 'Idempotency-Key must be 1 to 255 printable ASCII characters');
    const body = await readJsonBody(request, options.maxBodyBytes);
    const records = Array.isArray(body) ? body : [body];
    if (!records.length) throw new HttpError(400, 'the array holds no record');
    if (records.length > options.maxRecords) throw new HttpError(413, `${records.length} records in one request; the limit is ${options.maxRecords}`);
    const codec = await codecOf(topic);
    const checked = records.map((record) => checkRecord(codec.type as Type, topic.declaration.rules, record));
    const invalid = checked.flatMap((result, index) => ('errors' in result ? [{ index, errors: result.errors as FieldError[] }] : []));
    if (invalid.length) {
      const first = invalid[0]!;
      throw new HttpError(400, `${invalid.length} of ${records.length} records invalid, nothing published (record ${first.index}: ${first.errors[0]!.field} ${first.errors[0]!.message})`, { records: invalid });
    }
    const messages: OutgoingMessage[] = checked.map((result) => {
      const record = (result as { record: Record<string, unknown> }).record;
      return { key: String(record[topic.declaration.key]), value: codec.encode(record) };
    });
    if (idempotencyKey === undefined) return { body: await send(topic, messages, messages.map(() => null)) };

    // the key is the client's, per client and topic: two shops may both pick "order-1"
    const entry = { key: `${names.redisKeys.gatewayIdempotency}${client ?? '-'}:${topic.name}:${sha256(idempotencyKey).toString('hex')}`, fingerprint: fingerprintOf(messages) };
    const claim = await idempotency.claim(entry.key, entry.fingerprint).catch((error: unknown) => {
      throw new HttpError(503, `the Idempotency-Key store (Redis at ${redactedUrl(config.REDIS_URL)}) is unreachable: ${errorMessage(error)}; nothing was published, retry later`, {}, retryAfter);
    });
    if (claim.state === 'mismatch') throw new HttpError(422, 'this Idempotency-Key was used for different records; a retry must send the same records');
    if (claim.state === 'pending') throw new HttpError(409, 'a request with this Idempotency-Key is still being published; retry later', {}, retryAfter);
    if (claim.state === 'done') return { body: claim.answer, headers: { 'idempotent-replayed': 'true' } };
    if (claim.state === 'new') return { body: await send(topic, messages, messages.map(() => null), entry) };
    // a gateway stopped while it sent an attempt: what it had not recorded may have been written
    const known =
      claim.state === 'stale'
        ? messages.map((_, index) => claim.outcomes?.[index] || { indeterminate: 'the gateway sending an earlier attempt stopped before Kafka answered' })
        : claim.outcomes;
    return { body: await send(topic, messages, known, entry), headers: { 'idempotent-replayed': 'partial' } };
  }

  /**
   * Sends the records whose outcome in `known` is `null` (an earlier attempt of the same
   * Idempotency-Key acknowledged the ones with a position, and the indeterminate ones may be
   * written: they are never sent again) and answers once all have a position. With an
   * idempotency entry, what Kafka finally acknowledged is recorded even if the client was
   * already told 503.
   */
  async function send(topic: GatewayTopic, messages: OutgoingMessage[], known: RecordOutcome[], idempotencyEntry?: { key: string; fingerprint: string }): Promise<Record<string, unknown>> {
    const missing = messages.flatMap((_, index) => (known[index] === null ? [index] : []));
    const answerOf = (outcomes: RecordOutcome[], unsent: string) => outcomes.map((outcome) => (outcome === null ? { error: unsent } : isIndeterminate(outcome) ? { error: `indeterminate: ${outcome.indeterminate}` } : outcome));
    if (!missing.length) {
      // nothing left to send: the claim took the entry, so it is settled again before the answer
      if (idempotencyEntry) await settleIdempotency(idempotencyEntry, known, { topic: topic.name, records: known });
      return answerIndeterminate(topic, known);
    }
    // with no broker connected a record would sit in librdkafka's queue and land whenever Kafka
    // is back, after the client was told 503 and retried: refuse it unsent instead
    if (!producer.brokersUp()) {
      if (idempotencyEntry) await settleIdempotency(idempotencyEntry, known).catch(() => {});
      throw new HttpError(503, `Kafka at ${config.KAFKA_BROKERS.join(',')} is unreachable: nothing was published; retry later`, { records: answerOf(known, 'not sent') }, retryAfter);
    }
    const sending = producer.send(topic.kafkaName, missing.map((index) => messages[index]!)).then(
      (positions) => {
        const outcomes = [...known];
        // committed; a delivery report that never came leaves only its position unknown
        missing.forEach((index, i) => (outcomes[index] = positions[i] ?? { indeterminate: 'committed, but Kafka did not report its position' }));
        return { failed: 0, firstError: undefined as unknown, outcomes };
      },
      (error: unknown) => {
        const outcomes = [...known];
        // every transaction that carried them was aborted: nothing of them is visible to readers
        const outcome: RecordOutcome = isOutcomeUnknown(error) ? { indeterminate: `the answer to its transaction's commit was lost (${errorMessage(error)})` } : null;
        for (const index of missing) outcomes[index] = outcome;
        return { failed: missing.length, firstError: error, outcomes };
      },
    );
    // recorded whenever Kafka settles the send, even after the client was answered 503
    const recorded = idempotencyEntry
      ? sending
          .then(({ outcomes }) => settleIdempotency(idempotencyEntry, outcomes, { topic: topic.name, records: outcomes }))
          .catch((error: unknown) => options.log.warn('could not record the outcome of an Idempotency-Key', { topic: topic.name, error: errorMessage(error) }))
      : undefined;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new HttpError(503, `Kafka did not acknowledge within ${options.ackTimeoutMs / 1000} s; the records may or may not be published: retry${idempotencyEntry ? ' with the same Idempotency-Key' : ', and tell duplicates by their ids'}`, { records: answerOf(known, 'unknown') }, retryAfter)),
        options.ackTimeoutMs + 2_000,
      );
    });
    const { failed, firstError, outcomes } = await Promise.race([sending, deadline]).finally(() => clearTimeout(timer));
    // on record before the client hears of it, so its next retry finds the outcome, not `pending`
    await recorded;
    metrics.recordsOut.inc({ job: 'gateway', output: topic.kafkaName }, missing.length - failed);
    if (failed && !isOutcomeUnknown(firstError)) {
      throw new HttpError(503, `Kafka did not commit the records (${errorMessage(firstError)}); their transaction was aborted, nothing was published: retry`, { records: answerOf(outcomes, 'not published') }, retryAfter);
    }
    if (failed) {
      throw new HttpError(
        503,
        `Kafka did not answer the commit of ${failed} records (${errorMessage(firstError)}); ${
          idempotencyEntry ? 'a retry with the same Idempotency-Key does not send them again, and says they may have been published' : 'they may or may not be published: retry, and tell duplicates by their ids'
        }`,
        { records: answerOf(outcomes, 'not sent') },
        retryAfter,
      );
    }
    return answerIndeterminate(topic, outcomes);
  }

  /**
   * Every record has a position, or some are indeterminate: those may be in Kafka already, so
   * this key does not send them again, and the answer (409, no Retry-After) says which.
   */
  function answerIndeterminate(topic: GatewayTopic, outcomes: RecordOutcome[]): Record<string, unknown> {
    const unknown = outcomes.flatMap((outcome, index) => (isIndeterminate(outcome) ? [index] : []));
    if (!unknown.length) return { topic: topic.name, records: outcomes };
    const first = outcomes[unknown[0]!] as { indeterminate: string };
    throw new HttpError(
      409,
      `${unknown.length} of ${outcomes.length} records of this Idempotency-Key may or may not have been published by an earlier attempt (record ${unknown[0]}: ${first.indeterminate}); this key does not send them again: look for them in ${topic.name}, or send them under a new Idempotency-Key`,
      { outcome: 'indeterminate', records: outcomes.map((outcome) => (isIndeterminate(outcome) ? { error: `indeterminate: ${outcome.indeterminate}` } : outcome)) },
    );
  }

  /** Done if every record has a position, forgotten if nothing may have been written, partial otherwise. */
  function settleIdempotency(entry: { key: string; fingerprint: string }, outcomes: RecordOutcome[], answer?: Record<string, unknown>): Promise<void> {
    if (answer && outcomes.every((outcome) => outcome !== null && !isIndeterminate(outcome))) return idempotency.done(entry.key, entry.fingerprint, answer);
    return outcomes.some((outcome) => outcome !== null) ? idempotency.partial(entry.key, entry.fingerprint, outcomes) : idempotency.forget(entry.key, entry.fingerprint);
  }

  async function ready(): Promise<void> {
    admin ??= createAdmin(config, 'lakestream-gateway-ready');
    await withTimeout(admin.listTopics(), 3_000, 'Kafka');
    const response = await withTimeout(fetch(`${config.SCHEMA_REGISTRY_URL.replace(/\/$/, '')}/subjects`), 3_000, 'the schema registry');
    if (!response.ok) throw new Error(`the schema registry answered ${response.status}`);
  }

  const reply = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

  const server = createGuardedServer('gateway', options.log, (request, response) => {
    const started = performance.now();
    const path = requestPath(request.url);
    const encodedTopic = path === undefined ? undefined : /^\/v1\/topics\/([^/]+)\/records$/.exec(path)?.[1];
    const topicName = encodedTopic === undefined ? undefined : decodePathSegment(encodedTopic);
    const done = (status: number) => {
      metrics.gatewayRequests.inc({ topic: topicName ?? '', status: String(status) });
      if (topicName) metrics.gatewayRequestDuration.observe({ topic: topicName }, secondsSince(started));
    };
    const fail = (error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      if (status === 500) options.log.error('request failed', { path, error: errorMessage(error) });
      else if (status === 503) options.log.warn('kafka unavailable', { path, error: errorMessage(error) });
      reply(response, status, { error: errorMessage(error), ...(error instanceof HttpError ? error.body : {}) }, error instanceof HttpError ? error.headers : {});
      // a body cut off at its limit is not read further
      if (status === 413) request.resume();
      done(status);
    };
    if (path === undefined) {
      // the body of a request that is refused before it is read must not hold the connection
      request.resume();
      fail(new HttpError(400, 'the request target must be a path starting with /'));
    } else if (encodedTopic !== undefined && topicName === undefined) {
      request.resume();
      fail(new HttpError(400, `the topic in ${path.slice(0, 200)} is not valid percent-encoded UTF-8`));
    } else if (topicName !== undefined) {
      if (request.method !== 'POST') return fail(new HttpError(405, 'records are published with POST', {}, { allow: 'POST' }));
      publish(request, topicName).then((answer) => {
        reply(response, 200, answer.body, answer.headers);
        done(200);
      }, fail);
    } else if (request.method === 'GET' && Object.hasOwn(pages, path)) {
      response.writeHead(200, { 'content-type': pages[path]!.type }).end(readFileSync(pages[path]!.file));
      done(200);
    } else if (request.method === 'GET' && path === '/openapi.json') {
      Promise.all([...topics.values()].map(async (topic) => ({ name: topic.name, type: (await codecOf(topic)).type as Type, description: topic.declaration.description })))
        .then((described) => reply(response, 200, openApiDocument(described, { apiKeys: Boolean(options.apiKeys), maxBodyBytes: options.maxBodyBytes, maxRecords: options.maxRecords })))
        .then(() => done(200), fail);
    } else if (request.method === 'GET' && path === '/healthz') {
      reply(response, 200, { status: 'ok' });
      done(200);
    } else if (request.method === 'GET' && path === '/readyz') {
      ready().then(() => (reply(response, 200, { status: 'ready' }), done(200)), (error: unknown) => fail(new HttpError(503, `not ready: ${errorMessage(error)}`, {}, { 'retry-after': String(RETRY_AFTER_S) })));
    } else if (request.method === 'GET' && path === '/metrics') {
      metricsRegistry.metrics().then((text) => response.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(text), fail);
    } else {
      fail(new HttpError(404, `nothing at ${request.method} ${path}; records go to POST /v1/topics/{topic}/records (see /openapi.json)`));
    }
  });
  // a client that sends slowly or never finishes does not hold a connection for ever
  server.requestTimeout = options.ackTimeoutMs + 15_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  }).catch(async (error: unknown) => {
    await producer.close();
    throw error;
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host === '0.0.0.0' ? '127.0.0.1' : options.host}:${port}/`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await producer.close();
      await admin?.close().catch(() => {});
    },
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** API keys from a JSON file: `{ "<key>": { "client": "shop-a", "topics": ["orders"] } }`. */
export function readApiKeys(file: string): Map<string, ApiKey> {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Partial<ApiKey>>;
  const keys = new Map<string, ApiKey>();
  for (const [key, grant] of Object.entries(parsed)) {
    if (key.length < 16) throw new Error(`an API key in ${file} is shorter than 16 characters`);
    if (!Array.isArray(grant.topics) || !grant.topics.every((topic) => typeof topic === 'string')) throw new Error(`the key of ${grant.client ?? 'a client'} in ${file} needs "topics": [names or "*"]`);
    keys.set(key, { client: String(grant.client ?? 'unnamed'), topics: grant.topics });
  }
  return keys;
}
