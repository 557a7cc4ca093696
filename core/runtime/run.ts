import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { StreamJob } from './types.ts';

/** A job fenced as a static member is started again once per this long, no more. */
const FENCED_RESTART_WINDOW_MS = 120_000;

/**
 * Runs jobs in this process until SIGTERM or SIGINT, or until one fails for good: then every job
 * makes its output durable, commits and leaves its group, and the process exits (0 after a
 * signal, 1 after a failure or a stop that did not finish within `stopTimeoutMs`).
 *
 * A job fenced as a static member (`StreamJob.failed` with context `fencedInstance`) is stopped
 * and made anew once: during a coordinator stall (two of three brokers killed) librdkafka can
 * be fenced by its own JoinGroup whose answer was lost, with no other process about (the
 * coordinator takes the resent join for a replacement of the instance: apache/kafka#23542).
 * A second live process with the same instance id would fence the new job again within the
 * window, and this process then stops as before, so two of them never take turns for ever.
 */
export async function runJobsUntilSignal(
  factories: Array<() => StreamJob>,
  log: Logger,
  options: { stopTimeoutMs?: number; statsIntervalMs?: number; onStopped?: () => Promise<void> } = {},
): Promise<void> {
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  const jobs: StreamJob[] = [];
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
  const lastFencedRestart = new Map<number, number>();
  const startJob = async (slot: number) => {
    const job = (jobs[slot] = factories[slot]!());
    job.failed.catch(async (error: unknown) => {
      const last = lastFencedRestart.get(slot);
      if (stopping || !fencedAsStaticMember(error) || (last !== undefined && performance.now() - last < FENCED_RESTART_WINDOW_MS)) {
        return stopAll(`${job.name} failed: ${errorMessage(error)}`, 1);
      }
      lastFencedRestart.set(slot, performance.now());
      log.warn('fenced as a static member; starting the job again once (a coordinator stall can fence a member by its own abandoned join)', { job: job.name, error: errorMessage(error) });
      await job.stop().catch((stopError: unknown) => log.warn('the fenced job did not stop cleanly', { job: job.name, error: errorMessage(stopError) }));
      if (stopping) return;
      await startJob(slot).catch((startError: unknown) => stopAll(`${job.name} could not start again: ${errorMessage(startError)}`, 1));
    });
    await job.start();
    log.info('job started', { job: job.name });
  };
  for (let slot = 0; slot < factories.length; slot++) await startJob(slot);
  setInterval(() => {
    for (const job of jobs) log.info('stats', { job: job.name, ...job.stats() });
    log.info('memory', memoryFigures());
  }, options.statsIntervalMs ?? 10_000).unref();
}

const fencedAsStaticMember = (error: unknown): boolean => (error as { context?: { fencedInstance?: unknown } } | null)?.context?.fencedInstance === true;

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
