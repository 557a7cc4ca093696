import { randomUUID } from 'node:crypto';
import type { ObjectStore } from './object-store.ts';
import { PreconditionFailed } from './object-store.ts';

/**
 * A lease in the object store: a JSON object `{ owner, expiresAt }` taken with put-if-absent, or
 * over an expired lease with a compare-and-set on its ETag, and renewed the same way. At most one
 * holder at a time across processes and machines, as long as clocks agree to well within the TTL;
 * a holder that dies loses the lease after the TTL.
 */
export interface Lease {
  readonly owner: string;
  /** Resolves false if the lease was lost (then the holder must stop). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

interface LeaseObject {
  owner: string;
  expiresAt: number;
}

export async function acquireLease(store: ObjectStore, key: string, ttlMs: number): Promise<Lease | undefined> {
  const owner = randomUUID();
  const body = (): LeaseObject => ({ owner, expiresAt: Date.now() + ttlMs });
  let etag: string;
  try {
    etag = await store.putJson(key, body(), { ifNoneMatch: '*' });
  } catch (error) {
    if (!(error instanceof PreconditionFailed)) throw error;
    const current = await store.getJson<LeaseObject>(key);
    if (current && current.value.expiresAt > Date.now()) return undefined;
    try {
      etag = current ? await store.putJson(key, body(), { ifMatch: current.etag }) : await store.putJson(key, body(), { ifNoneMatch: '*' });
    } catch (raced) {
      if (raced instanceof PreconditionFailed) return undefined;
      throw raced;
    }
  }
  return {
    owner,
    async renew() {
      try {
        etag = await store.putJson(key, body(), { ifMatch: etag });
        return true;
      } catch (error) {
        if (error instanceof PreconditionFailed) return false;
        throw error;
      }
    },
    async release() {
      const current = await store.getJson<LeaseObject>(key);
      if (current?.value.owner === owner) await store.delete([key]);
    },
  };
}
