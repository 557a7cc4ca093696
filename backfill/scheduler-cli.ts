import { createClientContext } from '../platform/context.ts';
import { arg, defineCommand, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { lakeTasks, runExclusive, startScheduler } from './scheduler.ts';

const command = defineCommand({
  name: 'scheduler',
  usage: ['pnpm run scheduler [-- options]'],
  description: `Long-running: runs the lake's batch tasks on their cron schedules (UTC), each under a lock in the
object store so a task never overlaps itself, not even across scheduler processes. A failed run
is retried with backoff; every run logs its outcome as one JSON line.`,
  options: {
    'run-now': option('TASK', 'run one task once (under its lock) and exit', arg.nonEmpty().optional()),
    namespace: option('NS', "a namespaced pipeline's tables", arg.text().default('')),
  },
  footer: `Tasks:
  backfill-yesterday   rebuild yesterday's user_transaction_counts (SCHEDULE_BACKFILL)
  compaction           merge small files of closed hours, today and yesterday (SCHEDULE_COMPACTION)`,
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const config = loadConfig();
  const { namespace } = values;
  const log = createLogger('scheduler');
  const context = createClientContext(config, { namespace, component: 'scheduler' });
  const options = {
    store: context.objectStore(),
    lockRoot: context.catalog.roots.locks,
    log,
  };
  const tasks = lakeTasks(context, namespace, { backfill: config.SCHEDULE_BACKFILL, compaction: config.SCHEDULE_COMPACTION });
  if (values['run-now']) {
    const task = tasks.find((candidate) => candidate.name === values['run-now']);
    if (!task) throw new LakestreamError('USAGE', `unknown task ${values['run-now']}; tasks: ${tasks.map((t) => t.name).join(', ')}`);
    const outcome = await runExclusive(task, { ...options, retries: 2, retryDelayMs: 1_000 });
    await context.close();
    process.exitCode = outcome.status === 'failed' ? 1 : 0;
    return;
  }
  const stop = startScheduler(tasks, options);
  const shutdown = (signal: string) => {
    log.info('scheduler stopping', { signal });
    stop();
    void context.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

runCli('scheduler', main);
