import { createClientContext } from '../platform/context.ts';
import { arg, defineCommand, option, repeated, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { featureViews, readFeatureApiKeys, startFeatureServer } from './server.ts';

const command = defineCommand({
  name: 'feature-server',
  usage: ['pnpm run feature-server [-- options]'],
  description: `Online features from Redis over HTTP, in Feast's shapes:
  POST /get-online-features     {"features": ["user_transaction_counts:total_transactions_count"], "entities": {"user_id": [1, 2]}}
  GET  /v1/features/{entity}/{id}   every feature of one entity (user, session), with status and updated_at
  GET  /openapi.json, /healthz, /readyz, /metrics

Each value comes with a status: PRESENT, NOT_FOUND (no row for the entity) or OUTSIDE_MAX_AGE
(its event time is older than the view's --max-age).`,
  options: {
    port: option('P', 'port (0: any free port; 6566 is feast serve\'s)', arg.port().default(6566)),
    host: option('H', 'address (0.0.0.0 to serve the network)', arg.nonEmpty().default('127.0.0.1')),
    namespace: option('NS', "serve a namespaced pipeline's features", arg.text().default('')),
    'api-keys': option('FILE', 'require API keys: {"<key>": {"client": "fraud-model"}} (default FEATURE_SERVER_API_KEYS_FILE; none: open)', arg.nonEmpty().optional()),
    'max-age': repeated('VIEW=SECONDS', 'serve a view\'s values only while their event time is this recent (e.g. session_predictions=7200)', arg.nonEmpty()),
    'max-body-bytes': option('N', 'larger bodies get 413', arg.integerAtLeast(1024).default(1024 * 1024)),
    'max-entities': option('N', 'more entity rows in one request get 413', arg.positiveInteger().default(10_000)),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const config = loadConfig();
  const context = createClientContext(config, { namespace: values.namespace, component: 'feature-server', redis: { connectTimeout: 3_000 } });
  const views = featureViews(context);
  const maxAgeSeconds: Record<string, number> = {};
  for (const given of values['max-age']) {
    const match = /^([a-z_]+)=(\d+)$/.exec(given);
    if (!match) throw new LakestreamError('USAGE', `--max-age must be VIEW=SECONDS, got "${given}"`);
    if (!views.has(match[1]!)) throw new LakestreamError('USAGE', `--max-age ${given}: no feature view ${match[1]} (views: ${[...views.keys()].join(', ')})`);
    maxAgeSeconds[match[1]!] = Number(match[2]);
  }
  const keysFile = values['api-keys'] ?? config.FEATURE_SERVER_API_KEYS_FILE;
  let apiKeys;
  if (keysFile) {
    try {
      apiKeys = readFeatureApiKeys(keysFile);
    } catch (error) {
      throw new LakestreamError('USAGE', `API keys (--api-keys / FEATURE_SERVER_API_KEYS_FILE) from ${keysFile}: ${errorMessage(error)}`);
    }
  }
  const log = createLogger('feature-server');
  const server = await startFeatureServer(context, {
    port: values.port,
    host: values.host,
    maxBodyBytes: values['max-body-bytes'],
    maxEntities: values['max-entities'],
    maxAgeSeconds,
    apiKeys,
    log,
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') throw new LakestreamError('USAGE', `port ${values.port} on ${values.host} is in use: choose another with --port`);
    throw error;
  });
  console.log(`feature-server: ${server.url}get-online-features, ${server.url}openapi.json`);
  log.info('feature server listening', { url: server.url, namespace: values.namespace || '(production)', views: [...views.keys()], apiKeys: apiKeys?.size ?? 0 });
  const stop = () => void server.close().then(() => context.close()).finally(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runCli('feature-server', main);
