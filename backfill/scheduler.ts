import type { ClientContext } from '../platform/context.ts';
import cron from 'node-cron';
import { errorMessage } from '../core/errors.ts';
import { acquireLease } from '../core/lease.ts';
import type { Logger } from '../core/log.ts';
import { retry } from '../core/retry.ts';
import { compactDay, compactionTarget } from './compact.ts';
import { BACKFILLED_FEATURES, backfillLayout, openDayBackfiller, planDays, type BackfilledFeature } from './features.ts';
import type { ObjectStore } from '../core/object-store.ts';

export interface ScheduledTask {
  name: string;
  /** node-cron expression (UTC). */
  cron: string;
  run(): Promise<Record<string, unknown>>;
}

export interface RunOutcome {
  task: string;
  status: 'succeeded' | 'failed' | 'skipped';
  attempts: number;
  durationMs: number;
  details?: Record<string, unknown>;
  error?: string;
}

export interface SchedulerOptions {
  store: ObjectStore;
  lockRoot: string;
  log: Logger;
  /** Lease duration; renewed every third of it while a run lasts. */
  lockTtlMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

/**
 * Runs `task` once under its lease: never twice at the same time, not even from two scheduler
 * processes on two machines. A failed run is retried with exponential backoff, and every run ends
 * in exactly one outcome log line.
 */
export async function runExclusive(task: ScheduledTask, options: SchedulerOptions): Promise<RunOutcome> {
  const started = Date.now();
  const ttl = options.lockTtlMs ?? 10 * 60_000;
  const lease = await acquireLease(options.store, `${options.lockRoot}/${task.name}.json`, ttl);
  if (!lease) {
    const outcome: RunOutcome = { task: task.name, status: 'skipped', attempts: 0, durationMs: Date.now() - started, error: 'another run holds the lock' };
    options.log.info('run skipped', { ...outcome });
    return outcome;
  }
  const renewal = setInterval(() => {
    lease.renew().then(
      (held) => held || options.log.error('lost the lock during a run', { task: task.name }),
      (error) => options.log.warn('lock renewal failed', { task: task.name, error: errorMessage(error) }),
    );
  }, ttl / 3);
  let attempts = 0;
  try {
    const details = await retry(
      async () => {
        attempts++;
        return task.run();
      },
      {
        retries: options.retries ?? 3,
        initialDelayMs: options.retryDelayMs ?? 30_000,
        maxDelayMs: 10 * 60_000,
        shouldRetry: () => true,
        onRetry: (error, attempt, delayMs) => options.log.warn('run failed; retrying', { task: task.name, attempt, delayMs, error: errorMessage(error) }),
      },
    );
    const outcome: RunOutcome = { task: task.name, status: 'succeeded', attempts, durationMs: Date.now() - started, details };
    options.log.info('run succeeded', { ...outcome });
    return outcome;
  } catch (error) {
    const outcome: RunOutcome = { task: task.name, status: 'failed', attempts, durationMs: Date.now() - started, error: errorMessage(error) };
    options.log.error('run failed', { ...outcome });
    return outcome;
  } finally {
    clearInterval(renewal);
    await lease.release().catch(() => {});
  }
}

/** Schedules every task; returns a stop function. */
export function startScheduler(tasks: ScheduledTask[], options: SchedulerOptions): () => void {
  const jobs = tasks.map((task) =>
    cron.schedule(task.cron, () => void runExclusive(task, options), { timezone: 'UTC', name: task.name, noOverlap: true }),
  );
  options.log.info('scheduler started', { tasks: tasks.map((task) => ({ name: task.name, cron: task.cron })) });
  return () => {
    for (const job of jobs) void job.stop();
  };
}

const utcDay = (offsetDays: number, now = new Date()) => new Date(now.getTime() + offsetDays * 86_400_000).toISOString().slice(0, 10);

/** The platform's batch tasks: yesterday's backfill, and compaction of closed hours. */
export function lakeTasks(context: ClientContext, namespace: string, schedule: { backfill: string; compaction: string }): ScheduledTask[] {
  const layout = backfillLayout(context.catalog, context.config.LAKE_BUCKET);
  return [
    {
      name: 'backfill-yesterday',
      cron: schedule.backfill,
      async run() {
        const yesterday = utcDay(-1);
        const days = await planDays(context, layout, { from: yesterday, to: yesterday });
        const rows: Partial<Record<BackfilledFeature, number>> = {};
        for (const feature of BACKFILLED_FEATURES) {
          const backfiller = await openDayBackfiller(context, layout, undefined, feature);
          try {
            rows[feature] = 0;
            for (const day of days) rows[feature] += (await backfiller.run(day)).rowsWritten;
          } finally {
            backfiller.close();
          }
        }
        return { day: yesterday, rows };
      },
    },
    {
      name: 'compaction',
      cron: schedule.compaction,
      async run() {
        const merged: Record<string, number> = {};
        for (const table of Object.values(context.catalog.tables).map((t) => t.view)) {
          for (const dt of [utcDay(-1), utcDay(0)]) {
            const results = await compactDay(context, compactionTarget(table, namespace), dt);
            merged[`${table}/${dt}`] = results.filter((r) => r.output).length;
          }
        }
        return { hoursMerged: merged };
      },
    },
  ];
}
