import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRedis } from '../../core/redis.ts';
import { getUserFeatures, readFeatures, writeFeatures, writeUserFeatures } from '../../features/online-store.ts';
import { catalog } from '../../platform/catalog.ts';
import { cleanupRedisPrefix, config, onCleanup, uniqueName } from '../helpers.ts';

test('online store: absolute writes never go back in time, and reads return nulls in order', async (t) => {
  const redis = createRedis(config);
  onCleanup(t, () => redis.quit());
  const prefix = `${uniqueName('online')}:feat:user:`;
  cleanupRedisPrefix(t, redis, prefix);

  assert.equal(await writeUserFeatures(redis, [{ user_id: 1, total_transactions_count: 5, updated_at: 500 }], prefix), 1);
  // a replayed or reordered older update, then the same one again: no effect
  assert.equal(
    await writeUserFeatures(
      redis,
      [
        { user_id: 1, total_transactions_count: 3, updated_at: 300 },
        { user_id: 1, total_transactions_count: 5, updated_at: 500 },
        { user_id: 2, total_transactions_count: 1, updated_at: 100 },
      ],
      prefix,
    ),
    1,
  );
  assert.equal(await writeUserFeatures(redis, [{ user_id: 1, total_transactions_count: 7, updated_at: 700 }], prefix), 1);
  assert.deepEqual(await getUserFeatures(redis, [2, 404, 1], prefix), [
    { user_id: 2, total_transactions_count: 1, updated_at: 100 },
    null,
    { user_id: 1, total_transactions_count: 7, updated_at: 700 },
  ]);
  assert.deepEqual(await redis.hgetall(`${prefix}1`), { total_transactions_count: '7', updated_at: '700' });
});

test('online store: a null value (a window with no transaction has no min) is stored empty and read back as null', async (t) => {
  const redis = createRedis(config);
  onCleanup(t, () => redis.quit());
  const feature = catalog(uniqueName('online-null')).features.userTransactionWindows;
  cleanupRedisPrefix(t, redis, feature.redisPrefix);
  const row = { user_id: 3, windows_as_of: 900, events: 2, count_1h: 0, amount_sum_1h: 0, amount_min_1h: null, amount_max_1h: null, count_24h: 2, amount_sum_24h: -4.5, amount_min_24h: -3, amount_max_24h: -1.5 };
  assert.equal(await writeFeatures(redis, feature, [row]), 1);
  const [read] = await readFeatures(redis, feature, [3]);
  assert.equal(read!.amount_min_1h, null);
  assert.equal(read!.amount_max_1h, null);
  assert.equal(read!.count_1h, 0, 'a zero is a zero, not a null');
  assert.equal(read!.amount_min_24h, -3);
  assert.equal(read!.updated_at, 900);
});
