import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { createClientContext } from '../core/context.ts';
import { LakestreamError } from '../core/errors.ts';
import { serveMetrics } from '../core/metrics.ts';
import { runJobsUntilSignal } from '../core/runtime/index.ts';
import { pipelineJobs } from './jobs.ts';

const STOP_TIMEOUT_MS = 30_000;

const usage = (jobNames: string[]) => helpText(`Usage: pnpm run pipeline [-- options]       every job in one process
       pnpm run job -- <name> [options]      one job (run several processes to scale out)

Jobs:
${jobNames.map((name) => `  ${name}`).join('\n')}

Options:
  --namespace NS        prefix for topics, consumer groups, lake tables and Redis keys (default none)
  --flush-rows N        lake sinks: flush a partition at N buffered rows (default 100000)
  --flush-interval-ms T lake sinks: flush a partition whose oldest row is T ms old (default 5000)
  --instance ID         transactional jobs: stable id of this process (default 0)
  --stats-interval-ms T log each job's stats and the process's memory every T ms (default 10000)
  --metrics-port P      serve Prometheus metrics at http://HOST:P/metrics (0: any free port, logged;
                        default METRICS_PORT, else none)
  -h, --help

SIGTERM or SIGINT flushes, commits and exits within ${STOP_TIMEOUT_MS / 1000} s. SIGHUP reloads models (session-scorer).
`);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: cliArgs(),
    allowPositionals: true,
    options: {
      all: { type: 'boolean', default: false },
      namespace: { type: 'string', default: '' },
      'flush-rows': { type: 'string' },
      'flush-interval-ms': { type: 'string' },
      instance: { type: 'string' },
      'stats-interval-ms': { type: 'string' },
      'metrics-port': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const config = loadConfig();
  const number = (name: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new LakestreamError('USAGE', `--${name} must be a positive integer, got ${JSON.stringify(value)}`);
    return n;
  };
  const port = (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n > 65535) throw new LakestreamError('USAGE', `--metrics-port must be a port number (0-65535), got ${JSON.stringify(value)}`);
    return n;
  };
  if (values.instance !== undefined && !/^[A-Za-z0-9._-]+$/.test(values.instance)) {
    throw new LakestreamError('USAGE', `--instance must be letters, digits, '.', '_' or '-' (it becomes part of a transactional id), got ${JSON.stringify(values.instance)}`);
  }
  const context = createClientContext(config, { namespace: values.namespace ?? '', component: 'pipeline' });
  const factories = pipelineJobs(context, {
    flushRows: number('flush-rows', values['flush-rows']),
    flushIntervalMs: number('flush-interval-ms', values['flush-interval-ms']),
    instance: values.instance,
  });
  const names = Object.keys(factories);
  if (values.help || (!values.all && positionals.length === 0)) {
    console.log(usage(names));
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const selected = values.all ? names : positionals;
  const unknown = selected.filter((name) => !factories[name]);
  if (unknown.length) throw new LakestreamError('USAGE', `unknown job ${unknown.join(', ')}; jobs: ${names.join(', ')}`);
  const metricsPort = values['metrics-port'] === undefined ? config.METRICS_PORT : port(values['metrics-port']);
  if (metricsPort !== undefined) await serveMetrics(metricsPort, context.log);
  await runJobsUntilSignal(
    selected.map((name) => factories[name]!()),
    context.log,
    { stopTimeoutMs: STOP_TIMEOUT_MS, statsIntervalMs: number('stats-interval-ms', values['stats-interval-ms']), onStopped: () => context.close() },
  );
}

runCli('pipeline', main);
