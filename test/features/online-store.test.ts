import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRedis } from '../../core/redis.ts';
import { getUserFeatures, writeUserFeatures } from '../../features/online-store.ts';
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
