import { arg, defineCommand, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { createCollector } from './collect.ts';
import { startDashboard } from './server.ts';

const command = defineCommand({
  name: 'dashboard',
  usage: ['pnpm run dashboard [-- options]'],
  description: `A live web page over the platform: events/s per topic, consumer lag per group and partition,
dead letters, lake tables (rows, files, bytes, last flush), backfill and compaction runs, the
promo's economics and the transactions. Each figure names the query or server it comes from.
Stops on Ctrl-C.`,
  options: {
    port: option('P', 'port to listen on (0: any free port)', arg.port().default(3030)),
    host: option('H', 'address to listen on (0.0.0.0 to share it)', arg.nonEmpty().default('127.0.0.1')),
    namespace: option('NS', 'the pipeline to watch (default none: production)', arg.text().default('')),
    'interval-ms': option('T', 'how often the page updates (default 2000); the lake is re-read every 10 s', arg.integerAtLeast(200).default(2000)),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const { port, 'interval-ms': intervalMs } = values;
  const config = loadConfig();
  const log = createLogger('dashboard');
  const dashboard = await startDashboard(createCollector(config, { namespace: values.namespace }), { port, host: values.host, intervalMs, log }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') throw new LakestreamError('USAGE', `port ${port} on ${values.host} is in use: choose another with --port`);
    throw error;
  });
  console.log(`dashboard: ${dashboard.url}`);
  log.info('dashboard listening', { url: dashboard.url, namespace: values.namespace || '(production)' });
  const stop = () => {
    void dashboard.close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runCli('dashboard', main);
