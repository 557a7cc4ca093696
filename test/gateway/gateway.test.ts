import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createRedis } from '../../core/redis.ts';
import { fingerprintOf, idempotencyStore } from '../../gateway/idempotency.ts';
import { readApiKeys } from '../../gateway/server.ts';
import { config, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { order, setupGateway } from './fixture.ts';

test('gateway: valid records are acknowledged in Kafka where it says; an invalid one gets 400 with its fields and nothing of its batch is published', { timeout: 180_000 }, async (t) => {
  const { post, read, published, admin, names, gateway } = await setupGateway(t, 'gateway');
  await read('orders', 'input-products');

  const orders = [order(), order({ user_id: 7, quantity: 1 }), order({ user_id: 9 })];
  const accepted = await post('orders', orders);
  assert.equal(accepted.status, 200, await accepted.clone().text());
  const body = (await accepted.json()) as { topic: string; records: Array<{ partition: number; offset: number }> };
  assert.equal(body.topic, 'orders');
  assert.equal(body.records.length, 3);
  await waitFor('the three orders in Kafka', async () => (published('orders').length === 3 ? true : undefined), 30_000, 200);
  for (const [index, at] of body.records.entries()) {
    const stored = published('orders').find((p) => p.partition === at.partition && p.offset === at.offset);
    assert.ok(stored, `order ${index} at partition ${at.partition}, offset ${at.offset}`);
    assert.deepEqual(stored.value, orders[index]);
  }

  // one bad record in a batch: nothing of the batch is published, every bad field is named
  const endOffsets = async () => {
    const listed = await admin.listOffsets({ topics: [{ name: names.topic.orders, partitions: Array.from({ length: 6 }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })) }] });
    return listed[0]!.partitions.reduce((sum, p) => sum + Number(p.offset), 0);
  };
  const before = await endOffsets();
  const refused = await post('orders', [order(), order({ quantity: 0, unit_price: 'cheap', product: undefined }), order({ colour: 'red' })]);
  assert.equal(refused.status, 400);
  const problem = (await refused.json()) as { error: string; records: Array<{ index: number; errors: Array<{ field: string; message: string }> }> };
  assert.match(problem.error, /2 of 3 records invalid, nothing published/);
  assert.deepEqual(problem.records.map((r) => r.index), [1, 2]);
  assert.deepEqual(problem.records[0]!.errors.map((e) => e.field).sort(), ['product', 'unit_price']);
  assert.match(problem.records[0]!.errors.find((e) => e.field === 'unit_price')!.message, /must be double, got "cheap"/);
  assert.deepEqual(problem.records[1]!.errors, [{ field: 'colour', message: 'is not a field of dev.lakestream.Order' }]);
  // the business rules, once the schema is satisfied
  const rule = await post('orders', order({ quantity: 0 }));
  assert.equal(rule.status, 400);
  assert.deepEqual(((await rule.json()) as typeof problem).records[0]!.errors, [{ field: 'quantity', message: 'must be a whole number from 1 to 10000' }]);
  assert.equal(await endOffsets(), before, 'nothing half-accepted');

  // a 64-bit id beyond JSON's exact integers, as a string of digits
  const big = { product_id: '9007199254740993', name: 'serum', category_code: null, brand: 'x', price: 3.5, shop_id: 'shop-a', updated_at: Date.now() };
  const product = await post('input-products', big);
  assert.equal(product.status, 200, await product.clone().text());
  await waitFor('the product in Kafka', async () => (published('input-products').length === 1 ? true : undefined), 30_000, 200);
  assert.equal(published('input-products')[0]!.value.product_id, 9007199254740993n, 'read back exactly');

  // what is not a record
  assert.equal((await post('no-such-topic', order())).status, 404);
  assert.equal((await post('products', { product_id: 1 })).status, 404, 'the filter writes products; clients do not');
  assert.equal((await post('orders', '{"order_id": ')).status, 400);
  assert.equal((await post('orders', [])).status, 400);
  assert.equal((await post('orders', order(), { 'content-type': 'text/plain' })).status, 415);
  const tooBig = await post('orders', Array.from({ length: 500 }, () => order({ customer_name: 'x'.repeat(200) })));
  assert.equal(tooBig.status, 413);
  assert.equal((await post('orders', Array.from({ length: 101 }, () => order()))).status, 413, 'more than --max-records');
  assert.equal((await fetch(new URL('/v1/topics/orders/records', gateway.url))).status, 405);

  // the API document comes from the registered schemas
  const openapi = (await (await fetch(new URL('/openapi.json', gateway.url))).json()) as { paths: Record<string, unknown>; components: { schemas: Record<string, { required: string[]; properties: Record<string, { type: unknown }> }> } };
  assert.deepEqual(Object.keys(openapi.paths).filter((path) => path.startsWith('/v1/')).sort(), ['/v1/topics/input-products/records', '/v1/topics/orders/records', '/v1/topics/shop-events/records', '/v1/topics/transactions/records']);
  assert.deepEqual(openapi.components.schemas.Order!.required, ['order_id', 'customer_name', 'user_id', 'product', 'quantity', 'unit_price', 'order_time']);
  assert.deepEqual(openapi.components.schemas.Product!.properties.category_code!.type, ['string', 'null']);
  assert.ok(!openapi.components.schemas.Product!.required.includes('brand'), 'a field with a default is optional');
  assert.equal((await fetch(new URL('/healthz', gateway.url))).status, 200);
  assert.equal((await fetch(new URL('/readyz', gateway.url))).status, 200);
  const scraped = await (await fetch(new URL('/metrics', gateway.url))).text();
  assert.match(scraped, /lakestream_gateway_requests_total\{topic="orders",status="200"\} \d/);
  assert.match(scraped, /lakestream_gateway_requests_total\{topic="orders",status="400"\} [2-9]/);
});

test('gateway: API keys, each limited to its topics', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lakestream-keys-'));
  const file = join(dir, 'keys.json');
  writeFileSync(file, JSON.stringify({ 'shop-a-0123456789abcdef': { client: 'shop-a', topics: ['input-products'] }, 'front-0123456789abcdef': { client: 'order-page', topics: ['orders'] } }));
  const { post } = await setupGateway(t, 'gateway-keys', { apiKeys: readApiKeys(file) });
  assert.equal((await post('orders', order())).status, 401);
  assert.equal((await post('orders', order(), { authorization: 'Bearer not-a-key-at-all-000' })).status, 401);
  const forbidden = await post('orders', order(), { authorization: 'Bearer shop-a-0123456789abcdef' });
  assert.equal(forbidden.status, 403);
  assert.match(((await forbidden.json()) as { error: string }).error, /shop-a may not publish to orders \(it may publish to input-products\)/);
  assert.equal((await post('orders', order(), { authorization: 'Bearer front-0123456789abcdef' })).status, 200);
  assert.equal((await post('orders', order(), { 'x-api-key': 'front-0123456789abcdef' })).status, 200);
  writeFileSync(file, JSON.stringify({ short: { topics: ['orders'] } }));
  assert.throws(() => readApiKeys(file), /shorter than 16 characters/);
});

test('gateway: with an Idempotency-Key a retry gets the first answer and publishes nothing again; twins sent at once publish once; other records under the key get 422', { timeout: 120_000 }, async (t) => {
  const { post, read, published, redis, names } = await setupGateway(t, 'gateway-idempotent');
  await read('orders');
  const orders = [order(), order({ user_id: 8 })];
  const key = { 'idempotency-key': `batch-${orders[0]!.order_id}` };
  const first = await post('orders', orders, key);
  assert.equal(first.status, 200, await first.clone().text());
  const firstAnswer = await first.json();
  const retry = await post('orders', orders, key);
  assert.equal(retry.status, 200);
  assert.equal(retry.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await retry.json(), firstAnswer, 'the same partitions and offsets');

  const changed = await post('orders', [orders[0], order()], key);
  assert.equal(changed.status, 422);
  assert.match(((await changed.json()) as { error: string }).error, /used for different records/);
  assert.equal((await post('orders', order(), { 'idempotency-key': 'no spaces allowed' })).status, 400);

  // a double click: the same order twice at the same moment
  const twin = order();
  const twins = await Promise.all([1, 2, 3].map(() => post('orders', twin, { 'idempotency-key': twin.order_id })));
  const statuses = twins.map((response) => response.status).sort();
  assert.ok(statuses.includes(200) && statuses.every((status) => status === 200 || status === 409), `statuses ${statuses.join(', ')}`);
  for (const response of twins.filter((r) => r.status === 409)) assert.equal(response.headers.get('retry-after'), '5');

  // a retry after a partial failure sends only what Kafka did not acknowledge: here the
  // first attempt is recorded as having stored only the first record
  const [a, b] = [order(), order({ user_id: 9 })];
  const partialKey = { 'idempotency-key': `partial-${a.order_id}` };
  const stored = (await (await post('orders', [a, b], partialKey)).json()) as { records: Array<{ partition: number; offset: number }> };
  // where the gateway keeps it: per client (none: "-"), topic and the key's digest
  const partialEntry = `${names.redisKeys.gatewayIdempotency}-:orders:${createHash('sha256').update(partialKey['idempotency-key']).digest('hex')}`;
  assert.equal(await redis.hget(partialEntry, 'state'), 'done');
  await redis.hset(partialEntry, 'state', 'partial', 'body', JSON.stringify([stored.records[0], null]));
  const completed = await post('orders', [a, b], partialKey);
  assert.equal(completed.status, 200);
  assert.equal(completed.headers.get('idempotent-replayed'), 'partial');
  const completedBody = (await completed.json()) as { records: Array<{ partition: number; offset: number }> };
  assert.deepEqual(completedBody.records[0], stored.records[0], 'the acknowledged one is not sent again');
  assert.notDeepEqual(completedBody.records[1], stored.records[1], 'the other one is sent');

  await waitFor('the orders in Kafka', async () => (published('orders').length >= 6 ? true : undefined), 30_000, 200);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const ids = published('orders').map((p) => p.value.order_id);
  assert.deepEqual(ids.sort(), [...orders.map((o) => o.order_id), twin.order_id, a.order_id, b.order_id, b.order_id].sort(), 'each order once, but the one recorded as unacknowledged');
  const resent = published('orders').filter((p) => p.value.order_id === b.order_id).map((p) => ({ partition: p.partition, offset: p.offset }));
  assert.deepEqual(resent.sort((x, y) => x.offset - y.offset), [stored.records[1], completedBody.records[1]].sort((x, y) => x!.offset - y!.offset));
});

test('Idempotency-Key store on real Redis: pending blocks a twin and goes stale, keeping what an earlier attempt recorded; partial hands the retry its outcomes; a late settle never rebuilds an entry; done replays', async (t) => {
  const redis = createRedis(config);
  onCleanup(t, () => redis.quit());
  let clock = 1_000_000;
  const store = idempotencyStore(() => redis, 60_000, () => clock);
  const key = `${uniqueName('idem')}:entry`;
  onCleanup(t, () => redis.del(key));
  const messages = [{ key: 'a', value: Buffer.from([1, 2]) }, { key: 'b', value: Buffer.from([3]) }];
  const fingerprint = fingerprintOf(messages);
  assert.notEqual(fingerprint, fingerprintOf([...messages].reverse()), 'order matters');
  assert.notEqual(fingerprintOf([{ key: 'ab', value: Buffer.from([]) }]), fingerprintOf([{ key: 'a', value: Buffer.from('b') }]), 'no ambiguity between key and value');

  assert.deepEqual(await store.claim(key, fingerprint), { state: 'new' });
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'pending' });
  assert.deepEqual(await store.claim(key, 'other'), { state: 'mismatch' });
  assert.ok((await redis.pttl(key)) > 23 * 3600_000, 'a pending claim is remembered, not expired with its sender');
  clock += 61_000;
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'stale', outcomes: undefined }, 'a sender that never settled: its records may be anywhere');
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'pending' }, 'the retry that took over the stale claim holds the key');

  const outcomes = [{ partition: 2, offset: 7 }, null];
  await store.partial(key, fingerprint, outcomes);
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'partial', outcomes });
  clock += 61_000;
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'stale', outcomes }, 'a retry that died mid-send loses nothing of what the attempt before it recorded');
  const unsure = [{ partition: 2, offset: 7 }, { indeterminate: 'timed out' }];
  await store.partial(key, fingerprint, unsure);
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'partial', outcomes: unsure });

  await store.done(key, fingerprint, { topic: 'orders', records: [{ partition: 2, offset: 7 }, { partition: 0, offset: 3 }] });
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'done', answer: { topic: 'orders', records: [{ partition: 2, offset: 7 }, { partition: 0, offset: 3 }] } });
  assert.ok((await redis.pttl(key)) > 23 * 3600_000, 'remembered for a day');
  await store.forget(key, 'other');
  assert.equal(await redis.exists(key), 1, 'only the entry of the same records is forgotten');
  await store.forget(key, fingerprint);
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'new' });

  // an entry gone meanwhile (expired, or forgotten): a late settle leaves nothing behind, so the
  // key's next use is a new request, not a false "different records" (422)
  await redis.del(key);
  await store.partial(key, fingerprint, outcomes);
  await store.done(key, fingerprint, { topic: 'orders', records: [] });
  assert.equal(await redis.exists(key), 0);
  assert.deepEqual(await store.claim(key, fingerprint), { state: 'new' });
});
