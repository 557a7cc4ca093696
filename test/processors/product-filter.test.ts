import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { createAvroDecoder } from '../../core/avro.ts';
import pg from 'pg';
import { catalog, topicDeclarations, type Catalog } from '../../platform/catalog.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createTopicProducer } from '../../ingest/topic-producer.ts';
import { openDenylist } from '../../processors/product-filter/denylist.ts';
import type { Product } from '../../schemas/products.ts';
import { config, onCleanup, runCliFile, spawnJobs, uniqueName, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const product = (id: number, round: number): Product => ({
  product_id: id,
  name: `product ${id}`,
  category_code: id % 2 ? 'beauty.lipstick' : null,
  brand: id % 3 ? 'runail' : null,
  price: id * 1.5,
  shop_id: 'shop-a',
  updated_at: Date.UTC(2026, 10, 23) + round * 1_000 + id,
});

/** Every record the filter committed to products or blocked-products (read committed), decoded. */
async function readJudged(
  t: TestContext,
  names: Catalog,
  registry: SchemaRegistry,
  onRecord: (verdict: 'passed' | 'blocked', value: Product & { reason: string }) => void,
): Promise<void> {
  const decode = createAvroDecoder(registry);
  const consumer = createConsumer(config, uniqueName('filter-reader'));
  await consumer.connect();
  onCleanup(t, () => consumer.disconnect());
  await consumer.subscribe({ topics: [names.topic.products, names.topic.blockedProducts] });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      onRecord(topic === names.topic.products ? 'passed' : 'blocked', (await decode(message.value)).value as unknown as Product & { reason: string });
    },
  });
}

for (const store of ['redis', 'postgres'] as const) {
  test(`product filter, denylist in ${store}: a product put on the denylist at run time is blocked (with its reason, in the lake), one taken off passes; exactly once`, { timeout: 240_000 }, async (t) => {
    const { namespace, names, job, registry, query, redis } = await setupPipeline(t, 'filter', { DENYLIST_STORE: store });
    const denylist = async (...args: string[]) => {
      const result = await runCliFile('processors/product-filter/denylist-cli.ts', [...args, '--namespace', namespace], { DENYLIST_STORE: store });
      assert.equal(result.status, 0, result.stderr);
      return result.stdout.trim();
    };
    const listKey = catalog(namespace).redisKeys.productDenylist;
    const postgres = new pg.Client({ connectionString: config.POSTGRES_URL });
    await postgres.connect();
    onCleanup(t, async () => {
      await postgres.query('DELETE FROM lakestream_product_denylist WHERE list = $1', [listKey]).catch(() => {});
      await postgres.end();
    });
    assert.equal(await denylist('add', '2', '--reason', 'counterfeit'), 'added product 2: counterfeit');
    // the entry is where DENYLIST_STORE says, and only there
    const inPostgres = (await postgres.query('SELECT product_id::text AS id, reason FROM lakestream_product_denylist WHERE list = $1', [listKey]).catch(() => ({ rows: [] }))).rows;
    const inRedis = await redis.hgetall(listKey);
    if (store === 'postgres') {
      assert.deepEqual(inPostgres, [{ id: '2', reason: 'counterfeit' }]);
      assert.deepEqual(inRedis, {});
    } else {
      assert.deepEqual(inPostgres, []);
      assert.deepEqual(Object.keys(inRedis).sort(), ['.list', '2'], 'the entry, and the marker that the list exists');
    }

    const filter = job('product-filter');
    await filter.start();
    await job('blocked-products-lake-sink', { flushIntervalMs: 500 }).start();
    const producer = await createTopicProducer(config, { ...topicDeclarations.inputProducts, name: names.topic.inputProducts });
    onCleanup(t, () => producer.close());

    // what reaches products and blocked-products, read committed
    const seen = { products: [] as Array<{ id: number; round: number }>, blocked: [] as Array<{ id: number; round: number; reason: string }> };
    await readJudged(t, names, registry, (verdict, value) => {
      const round = Math.floor((value.updated_at - Date.UTC(2026, 10, 23)) / 1_000);
      if (verdict === 'passed') seen.products.push({ id: Number(value.product_id), round });
      else seen.blocked.push({ id: Number(value.product_id), round, reason: value.reason });
    });
    const ids = (list: Array<{ id: number; round: number }>, round: number) => list.filter((p) => p.round === round).map((p) => p.id).sort((a, b) => a - b);
    const round = async (n: number) => {
      await producer.send([1, 2, 3, 4, 5].map((id) => product(id, n)));
      await waitFor(`the five products of round ${n} judged`, async () => (ids(seen.products, n).length + ids(seen.blocked, n).length >= 5 ? true : undefined), 60_000, 200);
    };

    await round(1);
    assert.deepEqual(ids(seen.products, 1), [1, 3, 4, 5]);
    assert.deepEqual(seen.blocked.filter((p) => p.round === 1), [{ id: 2, round: 1, reason: 'counterfeit' }]);

    // changed while the filter runs: product 2 off the list, product 4 on it
    assert.equal(await denylist('remove', '2'), 'removed product 2');
    assert.equal(await denylist('add', '4', '--reason', 'recalled'), 'added product 4: recalled');
    const changedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await round(2);
    assert.ok(Date.now() - changedAt < 60_000);
    assert.deepEqual(ids(seen.products, 2), [1, 2, 3, 5], 'within a second of the change, without a restart');
    assert.deepEqual(seen.blocked.filter((p) => p.round === 2), [{ id: 4, round: 2, reason: 'recalled' }]);
    assert.match(await denylist('list'), /^4\t\S+\trecalled$/);

    // the blocked ones are archived with their reason
    const archived = await waitFor('both blocked products in the lake', async () => {
      const rows = await query<{ product_id: string; reason: string }>('SELECT product_id, reason FROM blocked_products ORDER BY blocked_at, product_id');
      return rows.length === 2 ? rows : undefined;
    }, 60_000, 1_000);
    assert.deepEqual(archived.map((row) => [Number(row.product_id), row.reason]), [[2, 'counterfeit'], [4, 'recalled']]);
    assert.equal(seen.products.length + seen.blocked.length, 10, 'each product passed or blocked exactly once');
    assert.deepEqual({ passed: filter.stats().passed, blocked: filter.stats().blocked }, { passed: 8, blocked: 2 });
  });
}

test('product filter: kill -9 twice while 3,000 products arrive; each is passed or blocked exactly once', { timeout: 240_000 }, async (t) => {
  const { namespace, names, registry, redis } = await setupPipeline(t, 'filter-kill');
  // every seventh product is denylisted, written straight into the hash the CLI writes
  const denied = Array.from({ length: 3_000 }, (_, i) => i + 1).filter((id) => id % 7 === 0);
  await redis.hset(names.redisKeys.productDenylist, Object.fromEntries(denied.map((id) => [String(id), JSON.stringify({ reason: 'test', added_at: 1 })])));
  const producer = await createTopicProducer(config, { ...topicDeclarations.inputProducts, name: names.topic.inputProducts });
  onCleanup(t, () => producer.close());

  const start = () => spawnJobs(t, ['product-filter'], ['--namespace', namespace, '--instance', '0']);
  let filter = start();
  for (let round = 0; round < 3; round++) {
    await producer.send(Array.from({ length: 1_000 }, (_, i) => product(round * 1_000 + i + 1, 1)));
    // killed once it has been through some of this round's products. A restarted instance gets
    // the partitions only once the group has dropped the killed member (session timeout, 45 s),
    // plus its own start: over 60 s on a loaded CI machine
    await waitFor('the filter to be at work', async () => (/"msg":"first records"/.test(filter.output()) ? true : undefined), 120_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (round < 2) {
      await filter.kill9();
      filter = start();
    }
  }

  const passed = new Map<number, number>();
  const blocked = new Map<number, number>();
  await readJudged(t, names, registry, (verdict, value) => {
    const seen = verdict === 'passed' ? passed : blocked;
    const id = Number(value.product_id);
    seen.set(id, (seen.get(id) ?? 0) + 1);
  });
  await waitFor('all 3,000 products judged', async () => (passed.size + blocked.size >= 3_000 ? true : undefined), 120_000, 500);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  assert.deepEqual([...blocked.keys()].sort((a, b) => a - b), denied, 'exactly the denylisted ones blocked');
  assert.equal(passed.size, 3_000 - denied.length);
  assert.ok([...passed.values(), ...blocked.values()].every((copies) => copies === 1), 'no product twice');
  assert.ok(!denied.some((id) => passed.has(id)), 'none of them passed');
});

test('product filter: a denylist flushed from Redis mid-stream lets no forbidden product through; products wait until it is back', { timeout: 240_000 }, async (t) => {
  const { namespace, names, job, registry, redis } = await setupPipeline(t, 'filter-flush', { DENYLIST_STORE: 'redis' });
  const store = openDenylist(config, catalog(namespace).redisKeys.productDenylist);
  onCleanup(t, () => store.close());
  await store.add('2', 'counterfeit');
  const filter = job('product-filter');
  await filter.start();
  const producer = await createTopicProducer(config, { ...topicDeclarations.inputProducts, name: names.topic.inputProducts });
  onCleanup(t, () => producer.close());
  const seen = { passed: [] as Array<[number, number]>, blocked: [] as Array<[number, number]> };
  await readJudged(t, names, registry, (verdict, value) => seen[verdict].push([Number(value.product_id), Math.floor((value.updated_at - Date.UTC(2026, 10, 23)) / 1_000)]));
  const judged = (round: number) => [...seen.passed, ...seen.blocked].filter(([, r]) => r === round).length;

  await producer.send([1, 2, 3, 4, 5].map((id) => product(id, 1)));
  await waitFor('round 1 judged', async () => (judged(1) === 5 ? true : undefined), 60_000, 200);
  assert.deepEqual(seen.blocked, [[2, 1]]);

  // the list vanishes with everything else in Redis; products keep arriving
  await redis.flushall();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await producer.send([1, 2, 3, 4, 5].map((id) => product(id, 2)));
  await new Promise((resolve) => setTimeout(resolve, 8_000));
  assert.ok(!seen.passed.some(([id, round]) => id === 2 && round === 2), `product 2 passed with the list gone: ${JSON.stringify(seen)}`);

  // the operator restores the list: what waited is judged by it
  await store.add('2', 'counterfeit');
  await waitFor('round 2 judged', async () => (judged(2) === 5 ? true : undefined), 90_000, 200);
  assert.deepEqual(seen.blocked, [[2, 1], [2, 2]]);
  assert.deepEqual(seen.passed.filter(([, round]) => round === 2).map(([id]) => id).sort(), [1, 3, 4, 5]);
});
