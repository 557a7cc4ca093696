import { processorDeclarations } from '../core/catalog.ts';
import type { ClientContext } from '../core/context.ts';
import type { StreamJob } from '../core/stream-job.ts';
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
  const jobs: Record<string, () => StreamJob> = {};
  for (const table of Object.values(catalog.tables)) jobs[table.sink] = () => createLakeSink(table, flush, context);
  jobs[processorDeclarations.transactionsFeatures.name] = () => createFeaturesJob(context, { instance: settings.instance });
  jobs[processorDeclarations.sessionScorer.name] = () => createSessionScorer(context, { instance: settings.instance });
  jobs[processorDeclarations.promo.name] = () => createPromoJob(context, { instance: settings.instance });
  for (const feature of Object.values(catalog.features)) {
    if (feature.redisSink) jobs[feature.redisSink] = () => createRedisSink(feature, context);
  }
  return jobs;
}
