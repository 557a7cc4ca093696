import type { Redis } from 'ioredis';
import { LakestreamError } from '../../core/errors.ts';

/**
 * The product denylist, in Redis: one hash, product id → JSON entry. A hash keeps `list` one
 * round trip and lets the filter reload the whole list at once, so it never sees half a change.
 */
export interface DenylistEntry {
  reason: string;
  /** When it was added, ms since the epoch. */
  added_at: number;
}

export function productId(text: string): string {
  if (!/^\d{1,19}$/.test(text) || BigInt(text) >= 2n ** 63n) throw new LakestreamError('USAGE', `a product id is a non-negative 64-bit integer, got ${JSON.stringify(text)}`);
  return BigInt(text).toString();
}

export async function addToDenylist(redis: Redis, key: string, id: string, reason: string): Promise<boolean> {
  const entry: DenylistEntry = { reason, added_at: Date.now() };
  return (await redis.hset(key, productId(id), JSON.stringify(entry))) === 1;
}

export async function removeFromDenylist(redis: Redis, key: string, id: string): Promise<boolean> {
  return (await redis.hdel(key, productId(id))) === 1;
}

export async function readDenylist(redis: Redis, key: string): Promise<Map<string, DenylistEntry>> {
  const raw = await redis.hgetall(key);
  return new Map(
    Object.entries(raw).map(([id, value]) => {
      try {
        const parsed = JSON.parse(value) as Partial<DenylistEntry>;
        return [id, { reason: String(parsed.reason ?? 'denylisted'), added_at: Number(parsed.added_at ?? 0) }];
      } catch {
        // an entry written by hand (`HSET key id reason`): the value is the reason
        return [id, { reason: value || 'denylisted', added_at: 0 }];
      }
    }),
  );
}
