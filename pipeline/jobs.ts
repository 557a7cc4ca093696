import { processorDeclarations, type ProcessorDeclaration, type ProcessorId } from '../platform/catalog.ts';
import { kafkaUserOf } from '../platform/access.ts';
import { asKafkaUserContext, type ClientContext } from '../platform/context.ts';
import type { StreamJob } from '../core/runtime/index.ts';
import { processorJobs } from '../processors/index.ts';
import { createLakeSink, type LakeSinkOptions } from '../sinks/lake/lake-sink.ts';
import { createRedisSink } from '../sinks/redis/redis-sink.ts';

export interface JobSettings {
  flushRows?: number;
  flushIntervalMs?: number;
  /**
   * Stable id of this process among a job's processes: each job becomes a static member of its
   * group under it, and transactional ids derive from it (see `StreamJobOptions.instance`).
   */
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
  const identity = { instance: settings.instance };
  for (const table of Object.values(catalog.tables)) jobs[table.sink] = (as) => createLakeSink(table, flush, as, identity);
  for (const [id, declaration] of Object.entries(processorDeclarations) as Array<[ProcessorId, ProcessorDeclaration]>) {
    jobs[declaration.name] = (as) => processorJobs[id](as, identity);
  }
  for (const feature of Object.values(catalog.features)) {
    if (feature.redisSink) jobs[feature.redisSink] = (as) => createRedisSink(feature, as, identity);
  }
  // each job signs in to a secured cluster as its own user
  return Object.fromEntries(Object.entries(jobs).map(([name, create]) => [name, () => create(asKafkaUserContext(context, kafkaUserOf(name)))]));
}
