import { avroCodec, type AvroCodec } from '../../core/avro.ts';
import { processorDeclarations } from '../../core/catalog.ts';
import type { ClientContext } from '../../core/context.ts';
import { LakestreamError, errorMessage } from '../../core/errors.ts';
import { createStreamJob, type StreamJob } from '../../core/runtime/index.ts';
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
  const output = catalog.topic[declaration.output];
  const blockedTopic = catalog.topic[declaration.blocked];
  let store: DenylistStore | undefined;
  const refreshMs = options.refreshMs ?? 250;
  const stats = { passed: 0, blocked: 0, denylisted: 0, denylistAgeMs: 0 };
  let denylist: Map<string, DenylistEntry> | undefined;
  let loadedAt = 0;
  let refresher: NodeJS.Timeout | undefined;
  let refreshFailing = false;
  let codecs: { passed: AvroCodec; blocked: AvroCodec } | undefined;

  async function refresh(): Promise<void> {
    try {
      store ??= openDenylist(context.config, catalog.redisKeys.productDenylist, { redis: context.redis });
      const next = await store.read();
      if (denylist && next.size !== denylist.size) log.info('denylist changed', { job: name, entries: next.size });
      denylist = next;
      loadedAt = Date.now();
      stats.denylisted = next.size;
      if (refreshFailing) log.info('denylist readable again', { job: name });
      refreshFailing = false;
    } catch (error) {
      if (!refreshFailing) log.warn('reading the denylist failed; keeping the last one read', { job: name, error: errorMessage(error) });
      refreshFailing = true;
    }
  }

  return createStreamJob({ name, topic: input, commit: 'transaction', transactionalId: `${name}-${options.instance ?? '0'}` }, context, () => ({
    async handle(batches, batchContext) {
      if (!refresher) {
        await refresh();
        refresher = setInterval(() => void refresh(), refreshMs);
        refresher.unref();
      }
      // a list older than a few refreshes may miss a product added since: wait rather than pass it
      if (!denylist || Date.now() - loadedAt > Math.max(5_000, refreshMs * 4)) {
        throw new LakestreamError(context.config.DENYLIST_STORE === 'postgres' ? 'POSTGRES_ERROR' : 'REDIS_ERROR', `the product denylist could not be read from ${store?.where ?? 'its store'} for ${Math.round((Date.now() - loadedAt) / 1000)} s`, {
          retriable: true,
        });
      }
      stats.denylistAgeMs = Date.now() - loadedAt;
      codecs ??= {
        passed: await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${output}-value`)),
        blocked: await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${blockedTopic}-value`)),
      };
      const now = Date.now();
      for (const batch of batches) {
        for (const record of batch.records) {
          const product = record.value as unknown as Product;
          const entry = denylist.get(String(product.product_id));
          const produced = entry
            ? batchContext.produce(blockedTopic, {
                key: record.key ?? String(product.product_id),
                partition: batch.partition,
                value: codecs.blocked.encodeTransient({ ...product, reason: entry.reason, blocked_at: now, source_partition: record.partition, source_offset: record.offset } satisfies BlockedProduct),
              })
            : batchContext.produce(output, { key: record.key ?? String(product.product_id), partition: batch.partition, value: codecs.passed.encodeTransient(product) });
          if (produced) await produced;
          if (entry) stats.blocked++;
          else stats.passed++;
        }
      }
    },
    async close() {
      clearInterval(refresher);
      await store?.close();
    },
    stats: () => ({ ...stats }),
  }));
}
