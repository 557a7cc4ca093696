import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { transactionsJobs, type Job } from './jobs.ts';

const STOP_TIMEOUT_MS = 30_000;

const usage = (jobNames: string[]) => helpText(`Usage: pnpm run pipeline [-- options]       every job in one process
       pnpm run job -- <name> [options]      one job (run several processes to scale out)

Jobs:
${jobNames.map((name) => `  ${name}`).join('\n')}

Options:
  --namespace NS        prefix for topics, consumer groups, lake tables and Redis keys (default none)
  --flush-rows N        lake sinks: flush a partition at N buffered rows (default 100000)
  --flush-interval-ms T lake sinks: flush a partition whose oldest row is T ms old (default 30000)
  --instance ID         features job: stable id of this process (default 0)
  -h, --help

SIGTERM or SIGINT flushes, commits and exits within ${STOP_TIMEOUT_MS / 1000} s.
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
  const factories = transactionsJobs(config, {
    namespace: values.namespace ?? '',
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

  const log = createLogger('pipeline');
  const jobs: Array<[string, Job]> = selected.map((name) => [name, factories[name]!()]);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const timeout = setTimeout(() => {
      log.error('jobs did not stop in time; exiting', { timeoutMs: STOP_TIMEOUT_MS });
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    const results = await Promise.allSettled(jobs.map(([, job]) => job.stop()));
    clearTimeout(timeout);
    for (const [index, result] of results.entries()) {
      if (result.status === 'rejected') log.error('stop failed', { job: jobs[index]![0], error: errorMessage(result.reason) });
    }
    log.info('stopped', { peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) });
    process.exit(results.some((result) => result.status === 'rejected') ? 1 : 0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  for (const [name, job] of jobs) {
    await job.start();
    log.info('job started', { job: name });
  }
  setInterval(() => {
    for (const [name, job] of jobs) log.info('stats', { job: name, ...job.stats() });
  }, 10_000).unref();
}

runCli('pipeline', main, { exitOnError: true });
