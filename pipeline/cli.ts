import { arg, defineCommand, expect, flag, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { createClientContext } from '../platform/context.ts';
import { LakestreamError } from '../core/errors.ts';
import { serveMetrics } from '../core/metrics.ts';
import { runJobsUntilSignal } from '../core/runtime/index.ts';
import { pipelineJobs } from './jobs.ts';

const STOP_TIMEOUT_MS = 30_000;

const instanceId = expect("letters, digits, '.', '_' or '-' (it becomes part of group member and transactional ids)", (raw) => (/^[A-Za-z0-9._-]+$/.test(raw) ? raw : undefined));

const command = defineCommand({
  name: 'pipeline',
  usage: ['pnpm run pipeline [-- options]       every job in one process', 'pnpm run job -- <name> [options]      one job (scale out: one process per --instance)'],
  description: `Runs the stream jobs: lake sinks, processors and Redis feature sinks, each in its consumer group.
SIGTERM or SIGINT flushes, commits and exits within ${STOP_TIMEOUT_MS / 1000} s. SIGHUP reloads models (session-scorer).`,
  positionals: true,
  options: {
    all: flag('run every job (what pnpm run pipeline does)'),
    namespace: option('NS', 'prefix for topics, consumer groups, lake tables and Redis keys (default none)', arg.text().default('')),
    'flush-rows': option('N', 'lake sinks: flush a partition at N buffered rows (default 100000)', arg.positiveInteger().optional()),
    'flush-interval-ms': option('T', 'lake sinks: flush a partition whose oldest row is T ms old (default 5000)', arg.positiveInteger().optional()),
    instance: option('ID', "stable id of this process among the job's processes: a restart after a crash takes its partitions back at once (default 0)", instanceId.default('0')),
    'stats-interval-ms': option('T', "log each job's stats and the process's memory every T ms (default 10000)", arg.positiveInteger().optional()),
    'metrics-port': option('P', 'serve Prometheus metrics at http://HOST:P/metrics (0: any free port, logged; default METRICS_PORT, else none)', arg.port().optional()),
  },
  footer: () => `Jobs:\n${Object.keys(pipelineJobs(createClientContext(loadConfig(), { component: 'pipeline' }))).map((name) => `  ${name}`).join('\n')}`,
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  const config = loadConfig();
  const context = createClientContext(config, { namespace: values.namespace, component: 'pipeline' });
  const factories = pipelineJobs(context, { flushRows: values['flush-rows'], flushIntervalMs: values['flush-interval-ms'], instance: values.instance });
  const names = Object.keys(factories);
  if (!values.all && positionals.length === 0) return command.refuse('name a job, or --all');
  const selected = values.all ? names : positionals;
  const unknown = selected.filter((name) => !factories[name]);
  if (unknown.length) throw new LakestreamError('USAGE', `unknown job ${unknown.join(', ')}; jobs: ${names.join(', ')}`);
  const metricsPort = values['metrics-port'] ?? config.METRICS_PORT;
  if (metricsPort !== undefined) await serveMetrics(metricsPort, context.log);
  await runJobsUntilSignal(
    selected.map((name) => factories[name]!),
    context.log,
    { stopTimeoutMs: STOP_TIMEOUT_MS, statsIntervalMs: values['stats-interval-ms'], onStopped: () => context.close() },
  );
}

runCli('pipeline', main);
