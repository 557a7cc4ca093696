import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readApiKeys } from '../../gateway/server.ts';
import { waitFor } from '../helpers.ts';
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
