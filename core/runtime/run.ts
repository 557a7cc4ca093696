import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { StreamJob } from './types.ts';

/**
 * Runs jobs in this process until SIGTERM or SIGINT, or until one fails for good: then every job
 * makes its output durable, commits and leaves its group, and the process exits (0 after a
 * signal, 1 after a failure or a stop that did not finish within `stopTimeoutMs`).
 */
export async function runJobsUntilSignal(jobs: StreamJob[], log: Logger, options: { stopTimeoutMs?: number; statsIntervalMs?: number; onStopped?: () => Promise<void> } = {}): Promise<void> {
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  let stopping = false;
  const stopAll = async (reason: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { reason });
    const timeout = setTimeout(() => {
      log.error('jobs did not stop in time; exiting', { timeoutMs: stopTimeoutMs });
      process.exit(1);
    }, stopTimeoutMs);
    const results = await Promise.allSettled(jobs.map((job) => job.stop()));
    await options.onStopped?.().catch(() => {});
    clearTimeout(timeout);
    for (const [index, result] of results.entries()) {
      if (result.status === 'rejected') log.error('stop failed', { job: jobs[index]!.name, error: errorMessage(result.reason) });
    }
    log.info('stopped', { peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) });
    process.exit(results.some((result) => result.status === 'rejected') ? 1 : exitCode);
  };
  process.on('SIGTERM', () => void stopAll('SIGTERM', 0));
  process.on('SIGINT', () => void stopAll('SIGINT', 0));
  process.on('SIGHUP', () => {
    log.info('reloading', { signal: 'SIGHUP' });
    for (const job of jobs) job.reload().catch((error: unknown) => log.warn('reload failed', { job: job.name, error: errorMessage(error) }));
  });
  for (const job of jobs) {
    job.failed.catch((error: unknown) => void stopAll(`${job.name} failed: ${errorMessage(error)}`, 1));
    await job.start();
    log.info('job started', { job: job.name });
  }
  setInterval(() => {
    for (const job of jobs) log.info('stats', { job: job.name, ...job.stats() });
    log.info('memory', memoryFigures());
  }, options.statsIntervalMs ?? 10_000).unref();
}

/**
 * Where the process's memory is, in MB: the V8 heap (capped by --max-old-space-size), memory
 * outside it that V8 tracks (Buffers: fetched Kafka messages, Parquet file bodies), and the rest
 * of the resident set (librdkafka's queues, DuckDB, code).
 */
export function memoryFigures(): Record<string, number> {
  const m = process.memoryUsage();
  const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
  return {
    rssMb: mb(m.rss),
    heapUsedMb: mb(m.heapUsed),
    heapTotalMb: mb(m.heapTotal),
    externalMb: mb(m.external),
    arrayBuffersMb: mb(m.arrayBuffers),
    otherMb: mb(m.rss - m.heapTotal - m.external),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}
