import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DeliveredAt } from '../core/kafka-producer.ts';

/**
 * What the gateway remembers of a request sent with an `Idempotency-Key`, in Redis (one hash per
 * key, so that a retry after a lost answer, a 503 or a gateway restart publishes nothing twice):
 *
 * - `pending`: a request with this key is being sent; a second one waits (409).
 * - `done`: every record was acknowledged; a retry gets the same answer, nothing is sent.
 * - `partial`: each record's outcome so far: acknowledged (its position), surely not written
 *   (`null`: a retry sends it) or indeterminate (it may have been written: a timeout after it
 *   reached a broker, or a gateway that stopped mid-send). An indeterminate record is never sent
 *   again under this key; the retry's answer says so.
 *
 * A key whose request published nothing is forgotten, so its retry starts afresh. A pending
 * claim whose sender has not settled it within `pendingTtlMs` (longer than any send may take)
 * is stale: the sender died, and what it had not recorded becomes indeterminate, while what an
 * earlier attempt recorded is kept. Every write after the claim checks the fingerprint, so a
 * late settle of an entry that expired meanwhile cannot leave one without it behind.
 */
export type RecordOutcome = DeliveredAt | null | { indeterminate: string };

export type Claim =
  | { state: 'new' }
  | { state: 'pending' }
  | { state: 'mismatch' }
  | { state: 'done'; answer: Record<string, unknown> }
  | { state: 'partial'; outcomes: RecordOutcome[] }
  /** A pending claim nobody settled: the outcomes an earlier attempt recorded, if any. */
  | { state: 'stale'; outcomes: RecordOutcome[] | undefined };

/** How long a request is remembered. */
export const REMEMBER_MS = 24 * 3600_000;

// one round trip, atomic: two retries of one key never both send.
// KEYS[1] entry; ARGV fingerprint, now (ms), pending ttl (ms), remember (ms)
const CLAIM = `
local state = redis.call('HGET', KEYS[1], 'state')
local now = tonumber(ARGV[2])
local function take()
  redis.call('HSET', KEYS[1], 'state', 'pending', 'pendingUntil', tostring(now + tonumber(ARGV[3])))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if not state then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1])
  take()
  return {'new', ''}
end
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] then return {'mismatch', ''} end
local body = redis.call('HGET', KEYS[1], 'body') or ''
if state == 'pending' then
  if now <= tonumber(redis.call('HGET', KEYS[1], 'pendingUntil') or '0') then return {'pending', ''} end
  take()
  return {'stale', body}
end
if state == 'partial' then take() end
return {state, body}
`;

// KEYS[1] entry; ARGV fingerprint, state, body, remember (ms): only the entry of this fingerprint
const SETTLE = `
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'body', ARGV[3])
redis.call('HDEL', KEYS[1], 'pendingUntil')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`;

const FORGET = `
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`;

export interface IdempotencyStore {
  claim(key: string, fingerprint: string): Promise<Claim>;
  /** Every record acknowledged: later retries get `answer`. */
  done(key: string, fingerprint: string, answer: Record<string, unknown>): Promise<void>;
  /** Some acknowledged, the others surely not written (`null`: a retry sends them) or indeterminate. */
  partial(key: string, fingerprint: string, outcomes: RecordOutcome[]): Promise<void>;
  /** Nothing was published: the key is free again. */
  forget(key: string, fingerprint: string): Promise<void>;
}

export function idempotencyStore(redis: () => Redis, pendingTtlMs: number, now: () => number = Date.now): IdempotencyStore {
  const settle = async (key: string, fingerprint: string, state: 'done' | 'partial', body: unknown) => {
    await redis().eval(SETTLE, 1, key, fingerprint, state, JSON.stringify(body), String(REMEMBER_MS));
  };
  return {
    async claim(key, fingerprint) {
      const [state, body] = (await redis().eval(CLAIM, 1, key, fingerprint, String(now()), String(pendingTtlMs), String(REMEMBER_MS))) as [string, string];
      if (state === 'done') return { state, answer: JSON.parse(body) as Record<string, unknown> };
      if (state === 'partial') return { state, outcomes: JSON.parse(body) as RecordOutcome[] };
      if (state === 'stale') return { state, outcomes: body ? (JSON.parse(body) as RecordOutcome[]) : undefined };
      return { state: state as 'new' | 'pending' | 'mismatch' };
    },
    done: (key, fingerprint, answer) => settle(key, fingerprint, 'done', answer),
    partial: (key, fingerprint, outcomes) => settle(key, fingerprint, 'partial', outcomes),
    async forget(key, fingerprint) {
      await redis().eval(FORGET, 1, key, fingerprint);
    },
  };
}

/** Whether an outcome says the record may have been written although no position came back. */
export function isIndeterminate(outcome: RecordOutcome): outcome is { indeterminate: string } {
  return outcome !== null && 'indeterminate' in outcome;
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
