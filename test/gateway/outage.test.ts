import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stackFaults } from '../../infra/chaos/stack-faults.ts';
import { config, waitFor } from '../helpers.ts';
import { order, setupGateway } from './fixture.ts';

test('gateway: with every broker down a publish gets 503 with Retry-After at once, never 200; the retry after recovery (same Idempotency-Key, twice) is stored once', { timeout: 240_000 }, async (t) => {
  const faults = stackFaults(config);
  t.after(() => faults.heal());
  const { post, read, published, gateway } = await setupGateway(t, 'gateway-outage', { ackTimeoutMs: 4_000 });
  const first = order();
  assert.equal((await post('orders', first)).status, 200, 'before the outage');

  const since = Date.now();
  const step = (what: string) => t.diagnostic(`${((Date.now() - since) / 1000).toFixed(1)} s: ${what}`);
  for (const node of faults.nodes) faults.kill(`kafka-${node}`);
  step('brokers killed');
  // librdkafka reports every broker down at once; its statistics (every second) confirm it
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const pending = order();
  const startedAt = Date.now();
  const key = { 'idempotency-key': `retry-${pending.order_id}` };
  const refused = await post('orders', pending, key);
  step(`answered ${refused.status}`);
  assert.equal(refused.status, 503);
  assert.ok(Date.now() - startedAt < 2_000, 'refused at once, not queued behind a dead cluster');
  assert.equal(refused.headers.get('retry-after'), '5');
  const body = (await refused.json()) as { error: string; records: unknown[] };
  assert.match(body.error, /^Kafka at \S+ is unreachable: nothing was published; retry later$/);
  assert.deepEqual(body.records, [{ error: 'not sent' }]);
  assert.equal((await fetch(new URL('/readyz', gateway.url))).status, 503, 'not ready while Kafka is away');

  step('readiness checked');
  await faults.heal();
  step('healed');
  // the client's retry, as Retry-After asks, under the same Idempotency-Key: the refusal left it free
  const retried = await waitFor('the retry to be acknowledged', async () => {
    const response = await post('orders', pending, key);
    return response.status === 200 ? response : undefined;
  }, 120_000, 5_000);
  step('retry acknowledged');
  assert.equal(retried.status, 200);
  assert.equal(retried.headers.get('idempotent-replayed'), null, 'the first publish of the key');
  // and a retry whose answer the client missed: the same answer, nothing sent again
  const again = await post('orders', pending, key);
  assert.equal(again.status, 200);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await again.json(), await retried.json());
  await read('orders');
  await waitFor('both orders in Kafka', async () => (published('orders').length >= 2 ? true : undefined), 60_000, 500);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const ids = published('orders').map((p) => p.value.order_id);
  assert.deepEqual(ids.filter((id) => id === pending.order_id).length, 1, 'the refused attempt left nothing behind');
  assert.deepEqual(ids.filter((id) => id === first.order_id).length, 1);
});
