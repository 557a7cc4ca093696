import type { Redis } from 'ioredis';
import type { ResolvedFeature } from '../platform/catalog.ts';
import { readAllFeatures } from './online-store.ts';
import { sumTotals, type PromoTotals } from '../processors/promo/economics.ts';

export interface PromoSummary extends PromoTotals {
  /** Shards (partitions of session-predictions) that reported, and the latest event time among them. */
  shards: number;
  updated_at: number | null;
}

/** The promo's running economics as served online: the sum of the per-shard totals in Redis. */
export async function readPromoSummary(redis: Redis, feature: ResolvedFeature): Promise<PromoSummary> {
  const rows = await readAllFeatures(redis, feature);
  const updated = rows.map((row) => Number(row.updated_at)).filter(Number.isFinite);
  return { ...sumTotals(rows), shards: rows.length, updated_at: updated.length ? Math.max(...updated) : null };
}
