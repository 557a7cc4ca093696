import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DeliveredAt } from '../core/kafka-producer.ts';

/**
 * What the gateway remembers of a request sent with an `Idempotency-Key`, in Redis (one hash per
 * key, so that a retry after a lost answer, a 503 or a gateway restart publishes nothing twice):
 *
 * - `pending`: a request with this key is being sent; a second one waits (409).
 * - `done`: every record was acknowledged; a retry gets the same answer, nothing is sent.
 * - `partial`: some records were acknowledged; a retry sends only the others.
 *
 * A key whose request published nothing is forgotten, so its retry starts afresh. A pending
 * claim expires after `pendingTtlMs` (longer than any send may take), so a gateway that dies
 * mid-send blocks the key for that long only; the records it sent may then be sent again.
 */
export type Claim =
  | { state: 'new' }
  | { state: 'pending' }
  | { state: 'mismatch' }
  | { state: 'done'; answer: Record<string, unknown> }
  | { state: 'partial'; positions: Array<DeliveredAt | null> };

/** How long a finished request is remembered. */
export const REMEMBER_MS = 24 * 3600_000;

// one round trip, atomic: two retries of one key never both send
const CLAIM = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'fingerprint', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'new', ''}
end
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] then return {'mismatch', ''} end
local body = redis.call('HGET', KEYS[1], 'body') or ''
if state == 'partial' then
  redis.call('HSET', KEYS[1], 'state', 'pending')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {state, body}
`;

export interface IdempotencyStore {
  claim(key: string, fingerprint: string): Promise<Claim>;
  /** Every record acknowledged: later retries get `answer`. */
  done(key: string, answer: Record<string, unknown>): Promise<void>;
  /** Some acknowledged (`null`: not): a retry sends the rest. */
  partial(key: string, positions: Array<DeliveredAt | null>): Promise<void>;
  /** Nothing was published: the key is free again. */
  forget(key: string): Promise<void>;
}

export function idempotencyStore(redis: () => Redis, pendingTtlMs: number): IdempotencyStore {
  return {
    async claim(key, fingerprint) {
      const [state, body] = (await redis().eval(CLAIM, 1, key, fingerprint, String(pendingTtlMs))) as [string, string];
      if (state === 'done') return { state, answer: JSON.parse(body) as Record<string, unknown> };
      if (state === 'partial') return { state, positions: JSON.parse(body) as Array<DeliveredAt | null> };
      return { state: state as 'new' | 'pending' | 'mismatch' };
    },
    async done(key, answer) {
      await redis().multi().hset(key, 'state', 'done', 'body', JSON.stringify(answer)).pexpire(key, REMEMBER_MS).exec();
    },
    async partial(key, positions) {
      await redis().multi().hset(key, 'state', 'partial', 'body', JSON.stringify(positions)).pexpire(key, REMEMBER_MS).exec();
    },
    async forget(key) {
      await redis().del(key);
    },
  };
}

/** Idempotency keys are the client's to choose: printable ASCII, at most 255 characters. */
export function validIdempotencyKey(value: string): boolean {
  return /^[\x21-\x7e]{1,255}$/.test(value);
}

/** The same records, in the same order, under the same Kafka keys: what "the same request" means. */
export function fingerprintOf(messages: Array<{ key?: string | Buffer | null; value: Buffer | null }>): string {
  const hash = createHash('sha256');
  for (const message of messages) {
    const key = Buffer.from(message.key ?? '');
    const value = message.value ?? Buffer.alloc(0);
    hash.update(`${key.length}:`).update(key).update(`${value.length}:`).update(value);
  }
  return hash.digest('hex');
}
