import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createLogger } from '../../core/log.ts';
import { createRedis } from '../../core/redis.ts';
import { writeFeatures } from '../../features/online-store.ts';
import { startFeatureServer, type FeatureServerOptions } from '../../features/server.ts';
import { createClientContext } from '../../platform/context.ts';
import { cleanupRedisPrefix, config, onCleanup, uniqueName } from '../helpers.ts';

/**
 * The feature server on real Redis, spoken to as Feast's clients speak to `feast serve`: the
 * request and response shapes, statuses per value, max age by event time, API keys, and a 400
 * naming the field for each malformed request.
 */
const T2 = Date.parse('2026-12-04T10:00:00Z');
const T1 = T2 - 120_000;

async function served(t: TestContext, options: Partial<FeatureServerOptions> = {}) {
  const namespace = uniqueName('feature-server');
  const context = createClientContext(config, { namespace });
  onCleanup(t, () => context.close());
  const redis = createRedis(config);
  onCleanup(t, () => redis.quit());
  cleanupRedisPrefix(t, redis, `${namespace}:`);
  const { features } = context.catalog;
  await writeFeatures(redis, features.userTransactionCounts, [
    { user_id: 1, total_transactions_count: 5, event_timestamp_millis: T1 },
    { user_id: 2, total_transactions_count: 7, event_timestamp_millis: T2 },
  ]);
  // user 1 spent 4.5 in two transactions a day ago, none in the last hour
  await writeFeatures(redis, features.userTransactionWindows, [
    { user_id: 1, windows_as_of: T1, events: 2, count_1h: 0, amount_sum_1h: 0, amount_min_1h: null, amount_max_1h: null, count_24h: 2, amount_sum_24h: -4.5, amount_min_24h: -3, amount_max_24h: -1.5, count_7d: 2, amount_sum_7d: -4.5, amount_min_7d: -3, amount_max_7d: -1.5 },
  ]);
  await writeFeatures(redis, features.sessionScores, [
    { user_session: 's-1', purchase_probability: 0.55, model_version: 3, events: 4, views: 3, carts: 1, cart_value: 12.5, event_time: T2 },
  ]);
  const server = await startFeatureServer(context, { port: 0, host: '127.0.0.1', maxBodyBytes: 64 * 1024, maxEntities: 100, maxAgeSeconds: {}, log: createLogger('feature-server-test'), ...options });
  onCleanup(t, () => server.close());
  const post = async (body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}get-online-features`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  };
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}${path}`, { headers });
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  };
  return { server, post, get };
}

const iso = (millis: number) => new Date(millis).toISOString().replace('.000Z', 'Z');

test('feature server: Feast get-online-features request and response shape, NOT_FOUND in its position, full feature names', { timeout: 60_000 }, async (t) => {
  const { post } = await served(t);
  const answer = await post({ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: [1, 2, 999] } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.deepEqual(answer.body, {
    metadata: { feature_names: ['user_id', 'total_transactions_count'] },
    results: [
      { values: [1, 2, 999], statuses: ['PRESENT', 'PRESENT', 'PRESENT'], event_timestamps: ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z'] },
      { values: [5, 7, null], statuses: ['PRESENT', 'PRESENT', 'NOT_FOUND'], event_timestamps: [iso(T1), iso(T2), '1970-01-01T00:00:00Z'] },
    ],
  });

  const full = await post({ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: [2] }, full_feature_names: true });
  assert.deepEqual(full.body.metadata.feature_names, ['user_id', 'user_transaction_counts__total_transactions_count']);

  // two views with their own join keys in one request, string ids for sessions
  const both = await post({ features: ['session_predictions:purchase_probability', 'user_transaction_counts:total_transactions_count', 'session_predictions:model_version'], entities: { user_id: [1, 3], user_session: ['s-1', 's-2'] } });
  assert.equal(both.status, 200, JSON.stringify(both.body));
  assert.deepEqual(both.body.metadata.feature_names, ['user_id', 'user_session', 'purchase_probability', 'total_transactions_count', 'model_version']);
  assert.deepEqual(both.body.results.slice(2).map((result: { values: unknown[]; statuses: string[] }) => [result.values, result.statuses]), [
    [[0.55, null], ['PRESENT', 'NOT_FOUND']],
    [[5, null], ['PRESENT', 'NOT_FOUND']],
    [[3, null], ['PRESENT', 'NOT_FOUND']],
  ]);
});

test('feature server: GET /v1/features/{entity}/{id} gives each feature with its status and updated_at', { timeout: 60_000 }, async (t) => {
  const { get, post } = await served(t);
  const user = (await get('v1/features/user/1')).body;
  assert.deepEqual({ ...user, features: undefined }, { entity: 'user', id: '1', features: undefined });
  assert.deepEqual(user.features['user_transaction_counts:total_transactions_count'], { value: 5, status: 'PRESENT', updated_at: iso(T1) });
  // every view of the entity, each value with its own status: a window with no transaction has no min
  assert.deepEqual(user.features['user_transaction_windows:amount_sum_24h'], { value: -4.5, status: 'PRESENT', updated_at: iso(T1) });
  assert.deepEqual(user.features['user_transaction_windows:count_1h'], { value: 0, status: 'PRESENT', updated_at: iso(T1) });
  assert.deepEqual(user.features['user_transaction_windows:amount_min_1h'], { value: null, status: 'NULL_VALUE', updated_at: iso(T1) });
  assert.equal(Object.keys(user.features).length, 1 + 13, 'the count, and the windows with their events');
  const nobody = (await get('v1/features/user/999')).body.features;
  assert.deepEqual(nobody['user_transaction_counts:total_transactions_count'], { value: null, status: 'NOT_FOUND', updated_at: null });
  assert.deepEqual(nobody['user_transaction_windows:count_7d'], { value: null, status: 'NOT_FOUND', updated_at: null });
  const windows = await post({ features: ['user_transaction_windows:count_1h', 'user_transaction_windows:amount_max_1h'], entities: { user_id: [1, 999] } });
  assert.deepEqual(windows.body.results.slice(1), [
    { values: [0, null], statuses: ['PRESENT', 'NOT_FOUND'], event_timestamps: [iso(T1), '1970-01-01T00:00:00Z'] },
    { values: [null, null], statuses: ['NULL_VALUE', 'NOT_FOUND'], event_timestamps: [iso(T1), '1970-01-01T00:00:00Z'] },
  ]);
  const session = await get('v1/features/session/s-1');
  assert.equal(session.body.features['session_predictions:purchase_probability'].value, 0.55);
  assert.equal(session.body.features['session_predictions:cart_value'].value, 12.5);
  const unknown = await get('v1/features/shop/1');
  assert.equal(unknown.status, 404);
  assert.match(unknown.body.error, /no feature view describes shop \(entities: user, session/);
  const openapi = await get('openapi.json');
  assert.deepEqual(Object.keys(openapi.body.paths), ['/get-online-features', '/v1/features/{entity}/{id}']);
  assert.ok(openapi.body.paths['/get-online-features'].post.requestBody.content['application/json'].schema.properties.features.items.enum.includes('user_transaction_counts:total_transactions_count'));
});

test('feature server: a value older than its view\'s max age (by event time) is OUTSIDE_MAX_AGE, with its event time and no value', { timeout: 60_000 }, async (t) => {
  const { post, get } = await served(t, { maxAgeSeconds: { user_transaction_counts: 60 }, now: () => T2 + 30_000 });
  const answer = await post({ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: [1, 2] } });
  assert.deepEqual(answer.body.results[1], { values: [null, 7], statuses: ['OUTSIDE_MAX_AGE', 'PRESENT'], event_timestamps: [iso(T1), iso(T2)] });
  assert.deepEqual((await get('v1/features/user/1')).body.features['user_transaction_counts:total_transactions_count'], { value: null, status: 'OUTSIDE_MAX_AGE', updated_at: iso(T1) });
});

test('feature server: a malformed request gets a 4xx naming the field, and the server goes on', { timeout: 60_000 }, async (t) => {
  const { post, get, server } = await served(t);
  const cases: Array<[unknown, number, RegExp]> = [
    [{}, 400, /^features: an array/],
    [[], 400, /^the body must be an object/],
    [{ features: 'user_transaction_counts:total_transactions_count', entities: { user_id: [1] } }, 400, /^features: an array/],
    [{ features: ['nope:x'], entities: { user_id: [1] } }, 400, /^features\[0\]: no feature view nope \(views: user_transaction_counts/],
    [{ features: ['user_transaction_counts:nope'], entities: { user_id: [1] } }, 400, /^features\[0\]: user_transaction_counts has no feature nope \(it has total_transactions_count\)/],
    [{ features: ['user_transaction_counts'], entities: { user_id: [1] } }, 400, /^features\[0\]: "user_transaction_counts" is not "<view>:<feature>"/],
    [{ features: [7], entities: { user_id: [1] } }, 400, /^features\[0\]: a "<view>:<feature>" string, not 7/],
    [{ features: ['user_transaction_counts:total_transactions_count'] }, 400, /^entities: an object/],
    [{ features: ['user_transaction_counts:total_transactions_count'], entities: { user_session: ['s'] } }, 400, /^entities\.user_id: required by user_transaction_counts:total_transactions_count/],
    [{ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: [1.5] } }, 400, /^entities\.user_id\[0\]: an id is an integer or a non-empty string, not 1\.5/],
    [{ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: [1, 2], user_session: ['s'] } }, 400, /^entities\.user_session: 1 ids, the other join keys have 2/],
    [{ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: Array.from({ length: 101 }, (_, i) => i) } }, 413, /101 entity rows in one request; the limit is 100/],
    [{ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: [1] }, full_feature_names: 'yes' }, 400, /^full_feature_names: true or false/],
    [{ feature_service: 'fraud', entities: { user_id: [1] } }, 400, /^feature_service: /],
    ['{"features": [', 400, /^the body is not valid JSON/],
  ];
  for (const [body, status, error] of cases) {
    const answer = await post(body);
    assert.equal(answer.status, status, `${JSON.stringify(body)}: ${JSON.stringify(answer.body)}`);
    assert.match(answer.body.error, error);
  }
  const wrongType = await fetch(`${server.url}get-online-features`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
  assert.equal(wrongType.status, 415);
  assert.equal((await fetch(`${server.url}get-online-features`)).status, 405);
  assert.equal((await get('v1/features/user/%E0')).status, 400);
  assert.equal((await get('healthz')).status, 200);
  assert.equal((await get('readyz')).status, 200);
  const metrics = await (await fetch(`${server.url}metrics`)).text();
  assert.match(metrics, /lakestream_feature_server_requests_total\{route="get-online-features",status="400"\} \d+/);
});

test('feature server: with API keys, a request without one or with an unknown one gets 401', { timeout: 60_000 }, async (t) => {
  const key = 'fraud-model-key-0123456789';
  const { post, get } = await served(t, { apiKeys: new Map([[key, { client: 'fraud-model' }]]) });
  const request = { features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: [2] } };
  assert.equal((await post(request)).status, 401);
  assert.equal((await post(request, { authorization: 'Bearer not-the-key-at-all' })).status, 401);
  assert.equal((await post(request, { authorization: `Bearer ${key}` })).body.results[1].values[0], 7);
  assert.equal((await get('v1/features/user/2', { 'x-api-key': key })).status, 200);
  assert.equal((await get('v1/features/user/2')).status, 401);
  assert.equal((await get('healthz')).status, 200, 'health needs no key');
});

test('feature server: the README\'s Python requests call works as written', { timeout: 60_000 }, async (t) => {
  const { server } = await served(t);
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const snippet = /## Features for ML serving[\s\S]*?```python\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(snippet, 'the README has the Python example');
  // the same call, pointed at this test's server; PyIceberg's environment brings requests
  const script = `${snippet.replace('http://127.0.0.1:6566/', server.url)}\nimport json\nprint(json.dumps({"names": names, "counts": counts, "spent": spent}))\n`;
  const python = join(config.LAKESTREAM_CACHE_DIR, 'python', 'bin', 'python');
  // not spawnSync: the server answering the script runs on this process's event loop
  const { stdout } = await promisify(execFile)(python, ['-c', script], { encoding: 'utf8', timeout: 30_000 });
  assert.deepEqual(JSON.parse(stdout), {
    names: ['user_id', 'total_transactions_count', 'amount_sum_24h'],
    counts: { values: [5, 7, null], statuses: ['PRESENT', 'PRESENT', 'NOT_FOUND'], event_timestamps: [iso(T1), iso(T2), '1970-01-01T00:00:00Z'] },
    spent: { values: [-4.5, null, null], statuses: ['PRESENT', 'NOT_FOUND', 'NOT_FOUND'], event_timestamps: [iso(T1), '1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z'] },
  });
});
