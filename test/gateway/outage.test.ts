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
  // a retry while the cluster recovers may time out with its transaction still open; that
  // transaction may then commit, and the next retry replays it instead of sending again
  let unanswered = 0;
  const retried = await waitFor('the retry to be acknowledged', async () => {
    const response = await post('orders', pending, key);
    if (response.status === 503 && /may or may not|did not answer the commit/.test(((await response.clone().json()) as { error: string }).error)) unanswered++;
    return response.status === 200 ? response : undefined;
  }, 120_000, 5_000);
  step(`retry acknowledged (${unanswered} retries unanswered before)`);
  assert.equal(retried.status, 200);
  if (!unanswered) assert.equal(retried.headers.get('idempotent-replayed'), null, 'the first publish of the key');
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

test('gateway: a record whose acknowledgement outlives the answer and its pending claim is never sent twice: the retry under its Idempotency-Key replays the late outcome, or says it is indeterminate', { timeout: 240_000 }, async (t) => {
  const faults = stackFaults(config);
  t.after(() => faults.heal());
  const { post, read, published } = await setupGateway(t, 'gateway-unsure', { ackTimeoutMs: 3_000 });
  assert.equal((await post('orders', order())).status, 200, 'before the pause');

  // every broker stops answering, its connections open: the producer still sees them up and
  // sends, the gateway answers 503 while the record is in flight, and the brokers may write it
  // once they run again
  for (const node of faults.nodes) faults.pause(`kafka-${node}`);
  const unsure = order();
  const key = { 'idempotency-key': `unsure-${unsure.order_id}` };
  const pausedAt = Date.now();
  const timedOut = await post('orders', unsure, key);
  assert.equal(timedOut.status, 503);
  const first = (await timedOut.json()) as { error: string; records: Array<{ error?: string }> };
  t.diagnostic(`while paused: ${timedOut.status} ${first.error} ${JSON.stringify(first.records)}`);
  assert.match(first.records[0]!.error ?? '', /^(indeterminate: |unknown$)/, 'not "not acknowledged": it may be in Kafka');
  // paused past the pending claim's lifetime (2 × the ack timeout + 30 s) and librdkafka's own
  // request timeout, so Kafka's late answer comes after the claim would have expired
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 40_000 - (Date.now() - pausedAt))));
  for (const node of faults.nodes) faults.resume(`kafka-${node}`);

  await read('orders');
  await waitFor('Kafka to answer again', async () => ((await post('orders', order())).status === 200 ? true : undefined), 120_000, 2_000);
  const retried = await post('orders', unsure, key);
  const body = (await retried.json()) as { error?: string; outcome?: string; records: Array<{ partition?: number; offset?: number; error?: string }> };
  const replayed = retried.headers.get('idempotent-replayed');
  t.diagnostic(`the retry: ${retried.status} (Idempotent-Replayed: ${replayed}) ${body.error ?? JSON.stringify(body)}`);
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  const copies = published('orders').filter((p) => p.value.order_id === unsure.order_id);
  t.diagnostic(`copies of the record in Kafka: ${copies.length}`);
  if (retried.status === 200) {
    // either the record's transaction committed after the 503 and the retry replays that outcome
    // (Idempotent-Replayed: true), or it was aborted, so nothing of it was published and the
    // retry sent it afresh: in both cases exactly one copy, the one the answer names
    assert.ok(replayed === 'true' || replayed === null);
    assert.equal(copies.length, 1, 'never a second send of a record that may be published');
    assert.deepEqual(body.records[0], { partition: copies[0]!.partition, offset: copies[0]!.offset });
  } else {
    // Kafka gave the record up with an error that does not say whether it was written
    assert.equal(retried.status, 409, `the retry does not re-send a record that may be published: ${retried.status} ${body.error}`);
    assert.equal(body.outcome, 'indeterminate');
    assert.equal(retried.headers.get('retry-after'), null, 'retrying this key changes nothing');
    assert.match(body.error ?? '', /may or may not have been published by an earlier attempt .*send them under a new Idempotency-Key/);
    assert.equal((await post('orders', unsure, key)).status, 409, 'and says so again');
    assert.ok(copies.length <= 1, `at most the one copy the paused brokers may have written (${copies.length})`);
  }
});
