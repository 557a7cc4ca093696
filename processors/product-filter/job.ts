import { processorDeclarations } from '../../platform/catalog.ts';
import type { ClientContext } from '../../platform/context.ts';
import { LakestreamError, errorMessage } from '../../core/errors.ts';
import type { StreamJob } from '../../core/runtime/index.ts';
import { createProcessorJob } from '../../core/runtime/processor.ts';
import type { BlockedProduct, Product } from '../../schemas/products.ts';
import { openDenylist, type DenylistEntry, type DenylistStore } from './denylist.ts';

export interface ProductFilterOptions {
  /** Stable id of this process among the job's processes (its transactional id). */
  instance?: string;
  /** How often the denylist is read again from its store (default 250 ms). */
  refreshMs?: number;
}

/**
 * Passes products from input-products to products unless their id is on the denylist; a blocked
 * product goes to blocked-products with the denylist's reason instead (and from there to the
 * lake, `blocked_products`). Each batch is one Kafka transaction with its offsets: a product is
 * passed or blocked exactly once, whatever crashes. The denylist is re-read from its store (Redis
 * or PostgreSQL, DENYLIST_STORE) every
 * `refreshMs`, so `pnpm run denylist -- add|remove` takes effect within a second, without a restart.
 * A product is judged by the list as it stood when its batch ran.
 */
export function createProductFilter(context: ClientContext, options: ProductFilterOptions = {}): StreamJob {
  const { catalog, log } = context;
  const declaration = processorDeclarations.productFilter;
  const name = catalog.group(declaration.name);
  const input = catalog.topic[declaration.input];
  const [output, blockedTopic] = declaration.outputs.map((id) => catalog.topic[id]) as [string, string];
  let store: DenylistStore | undefined;
  const refreshMs = options.refreshMs ?? 250;
  const stats = { passed: 0, blocked: 0, denylisted: 0, denylistAgeMs: 0 };
  let denylist: Map<string, DenylistEntry> | undefined;
  let loadedAt = 0;
  let refresher: NodeJS.Timeout | undefined;
  let refreshFailing = false;

  /** Set once a read found the list; from then on a missing list is a lost one. */
  let listSeen = false;
  let lostSince: number | undefined;

  async function refresh(): Promise<void> {
    try {
      store ??= openDenylist(context.config, catalog.redisKeys.productDenylist, { redis: context.redis });
      const next = await store.read();
      if (!next.exists && listSeen) {
        // judging by an empty list would pass every forbidden product: keep the last one read
        // until it is stale, then stop (beforeBatch) and say why
        if (lostSince === undefined) {
          lostSince = Date.now();
          log.error('the product denylist is gone from its store (flushed or failed over?); products wait until it is back', { job: name, store: store.where, lastEntries: denylist?.size ?? 0 });
        }
        return;
      }
      if (!next.exists && !denylist) log.warn('no product denylist yet: every product passes until one is added (pnpm run denylist -- add)', { job: name, store: store.where });
      if (next.exists) listSeen = true;
      if (lostSince !== undefined) log.info('the product denylist is back', { job: name, entries: next.entries.size });
      lostSince = undefined;
      if (denylist && next.entries.size !== denylist.size) log.info('denylist changed', { job: name, entries: next.entries.size });
      denylist = next.entries;
      loadedAt = Date.now();
      stats.denylisted = next.entries.size;
      if (refreshFailing) log.info('denylist readable again', { job: name });
      refreshFailing = false;
    } catch (error) {
      if (!refreshFailing) log.warn('reading the denylist failed; keeping the last one read', { job: name, error: errorMessage(error) });
      refreshFailing = true;
    }
  }

  /** When the batch under way started: a blocked product's `blocked_at`. */
  let batchStartedAt = 0;
  return createProcessorJob<Product, Record<string, never>>({ name, input, instance: options.instance, stores: {} }, context, () => ({
    async beforeBatch() {
      if (!refresher) {
        await refresh();
        refresher = setInterval(() => void refresh(), refreshMs);
        refresher.unref();
      }
      // a list older than a few refreshes may miss a product added since: wait rather than pass it
      if (!denylist || Date.now() - loadedAt > Math.max(5_000, refreshMs * 4)) {
        const why = lostSince !== undefined ? `is missing from ${store?.where ?? 'its store'} (it existed before: restore it, or re-add its entries with pnpm run denylist -- add)` : `could not be read from ${store?.where ?? 'its store'}`;
        throw new LakestreamError(context.config.DENYLIST_STORE === 'postgres' ? 'POSTGRES_ERROR' : 'REDIS_ERROR', `the product denylist ${why} for ${Math.round((Date.now() - loadedAt) / 1000)} s`, {
          retriable: true,
        });
      }
      stats.denylistAgeMs = Date.now() - loadedAt;
      batchStartedAt = Date.now();
    },
    process(product, { forward }, record) {
      const key = record.key?.toString() ?? String(product.product_id);
      const entry = denylist!.get(String(product.product_id));
      if (!entry) {
        stats.passed++;
        return forward(output, key, product);
      }
      stats.blocked++;
      return forward(blockedTopic, key, { ...product, reason: entry.reason, blocked_at: batchStartedAt, source_partition: record.partition, source_offset: record.offset } satisfies BlockedProduct);
    },
    async close() {
      clearInterval(refresher);
      await store?.close();
    },
    stats: () => ({ ...stats }),
  }));
}
