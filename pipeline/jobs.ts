import { processorDeclarations } from '../core/catalog.ts';
import { kafkaUserOf } from '../core/access.ts';
import { asKafkaUserContext, type ClientContext } from '../core/context.ts';
import type { StreamJob } from '../core/runtime/index.ts';
import { createProductFilter } from '../processors/product-filter/job.ts';
import { createPromoJob } from '../processors/promo/job.ts';
import { createSessionScorer } from '../processors/session-scorer/job.ts';
import { createFeaturesJob } from '../processors/transactions-features/job.ts';
import { createLakeSink, type LakeSinkOptions } from '../sinks/lake/lake-sink.ts';
import { createRedisSink } from '../sinks/redis/redis-sink.ts';

export interface JobSettings {
  flushRows?: number;
  flushIntervalMs?: number;
  /** Stable id of this process among a job's processes (transactional ids derive from it). */
  instance?: string;
}

/**
 * Every stream job, by name: a lake sink for each table of the catalog, a Redis sink for each
 * feature served online, and the processors. The context's catalog carries the namespace.
 */
export function pipelineJobs(context: ClientContext, settings: JobSettings = {}): Record<string, () => StreamJob> {
  const { catalog } = context;
  const flush: LakeSinkOptions = {
    ...(settings.flushRows ? { flushRows: settings.flushRows } : {}),
    ...(settings.flushIntervalMs ? { flushIntervalMs: settings.flushIntervalMs } : {}),
  };
  const jobs: Record<string, (context: ClientContext) => StreamJob> = {};
  for (const table of Object.values(catalog.tables)) jobs[table.sink] = (as) => createLakeSink(table, flush, as);
  jobs[processorDeclarations.transactionsFeatures.name] = (as) => createFeaturesJob(as, { instance: settings.instance });
  jobs[processorDeclarations.sessionScorer.name] = (as) => createSessionScorer(as, { instance: settings.instance });
  jobs[processorDeclarations.promo.name] = (as) => createPromoJob(as, { instance: settings.instance });
  jobs[processorDeclarations.productFilter.name] = (as) => createProductFilter(as, { instance: settings.instance });
  for (const feature of Object.values(catalog.features)) {
    if (feature.redisSink) jobs[feature.redisSink] = (as) => createRedisSink(feature, as);
  }
  // each job signs in to a secured cluster as its own user
  return Object.fromEntries(Object.entries(jobs).map(([name, create]) => [name, () => create(asKafkaUserContext(context, kafkaUserOf(name)))]));
}
