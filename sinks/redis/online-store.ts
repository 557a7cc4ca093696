import type { Redis } from 'ioredis';

/**
 * The online feature store for ML serving: one Redis hash per user, `<prefix><user_id>`, with
 * `total_transactions_count` and `updated_at` (the event time, epoch ms UTC, of the transaction
 * that produced the count).
 *
 * Semantics: `writeBatch` writes absolute values and is idempotent; each write is applied only if
 * its count is higher than the stored one (compared inside Redis, atomically, by a Lua script),
 * so a replayed or reordered older update never overwrites a newer one. A batch is one pipelined
 * round trip. `readMany` reads any number of users in one round trip; a user with no features
 * comes back as null.
 */
export interface UserFeatures {
  user_id: number;
  total_transactions_count: number;
  updated_at: number;
}

export const DEFAULT_USER_KEY_PREFIX = 'feat:user:';

const setIfNewer = `
local current = redis.call('HGET', KEYS[1], 'total_transactions_count')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'total_transactions_count', ARGV[1], 'updated_at', ARGV[2])
return 1`;

type RedisWithGuard = Redis & {
  setFeatureIfNewer(key: string, count: string, updatedAt: string): Promise<number>;
};

function withGuard(redis: Redis): RedisWithGuard {
  if (!('setFeatureIfNewer' in redis)) redis.defineCommand('setFeatureIfNewer', { numberOfKeys: 1, lua: setIfNewer });
  return redis as RedisWithGuard;
}

/** Applies `updates`; returns how many changed a stored value. */
export async function writeUserFeatures(redis: Redis, updates: UserFeatures[], prefix = DEFAULT_USER_KEY_PREFIX): Promise<number> {
  if (!updates.length) return 0;
  const pipeline = withGuard(redis).pipeline() as unknown as { setFeatureIfNewer(...args: string[]): void; exec(): Promise<Array<[Error | null, unknown]> | null> };
  for (const update of updates) {
    pipeline.setFeatureIfNewer(`${prefix}${update.user_id}`, String(update.total_transactions_count), String(update.updated_at));
  }
  const results = (await pipeline.exec()) ?? [];
  let applied = 0;
  for (const [error, result] of results) {
    if (error) throw error;
    applied += Number(result);
  }
  return applied;
}

/** Features of `userIds`, in the same order, with null for users that have none. */
export async function getUserFeatures(redis: Redis, userIds: number[], prefix = DEFAULT_USER_KEY_PREFIX): Promise<Array<UserFeatures | null>> {
  if (!userIds.length) return [];
  if (userIds.length === 1) {
    // one user, one command: a pipeline object would only add allocation to the hot lookup path
    const [count, updatedAt] = await redis.hmget(`${prefix}${userIds[0]}`, 'total_transactions_count', 'updated_at');
    return [count === null ? null : { user_id: userIds[0]!, total_transactions_count: Number(count), updated_at: Number(updatedAt) }];
  }
  const pipeline = redis.pipeline();
  for (const userId of userIds) pipeline.hmget(`${prefix}${userId}`, 'total_transactions_count', 'updated_at');
  const results = (await pipeline.exec()) ?? [];
  return results.map(([error, fields], index) => {
    if (error) throw error;
    const [count, updatedAt] = fields as [string | null, string | null];
    if (count === null) return null;
    return { user_id: userIds[index]!, total_transactions_count: Number(count), updated_at: Number(updatedAt) };
  });
}
