import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { createCollector } from './collect.ts';
import { startDashboard } from './server.ts';

const usage = helpText(`Usage: pnpm run dashboard [-- options]

A live web page over the platform: events/s per topic, consumer lag per group and partition,
dead letters, lake tables (rows, files, bytes, last flush), backfill and compaction runs, the
promo's economics and the transactions. Each figure names the query or server it comes from.

Options:
  --port P          port to listen on (default 3030; 0: any free port)
  --host H          address to listen on (default 127.0.0.1; 0.0.0.0 to share it)
  --namespace NS    the pipeline to watch (default none: production)
  --interval-ms T   how often the page updates (default 2000); the lake is re-read every 10 s
  -h, --help

Stops on Ctrl-C.
`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: cliArgs(),
    options: {
      port: { type: 'string', default: '3030' },
      host: { type: 'string', default: '127.0.0.1' },
      namespace: { type: 'string', default: '' },
      'interval-ms': { type: 'string', default: '2000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) throw new LakestreamError('USAGE', `--port must be a port number (0-65535), got ${JSON.stringify(values.port)}`);
  const intervalMs = Number(values['interval-ms']);
  if (!Number.isInteger(intervalMs) || intervalMs < 200) throw new LakestreamError('USAGE', `--interval-ms must be an integer of at least 200, got ${JSON.stringify(values['interval-ms'])}`);
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
