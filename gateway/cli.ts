import { createClientContext } from '../platform/context.ts';
import { arg, defineCommand, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { readApiKeys, startGateway } from './server.ts';

const command = defineCommand({
  name: 'gateway',
  usage: ['pnpm run gateway [-- options]'],
  description: `HTTP → Kafka for clients that do not speak Kafka:
  POST /v1/topics/{topic}/records   one JSON record or an array (orders, input-products, transactions, shop-events)
  GET  /                            an order page that publishes to orders
  GET  /openapi.json                the API, generated from the registered Avro schemas
  GET  /healthz, /readyz, /metrics

A POST with an Idempotency-Key header is published at most once however often it is retried
(the key's outcome is kept in Redis, REDIS_URL, for 24 h).`,
  options: {
    port: option('P', 'port (0: any free port)', arg.port().default(8088)),
    host: option('H', 'address (0.0.0.0 to serve the network)', arg.nonEmpty().default('127.0.0.1')),
    namespace: option('NS', "publish to a namespaced pipeline's topics", arg.text().default('')),
    'api-keys': option('FILE', 'require API keys: {"<key>": {"client": "shop-a", "topics": ["orders"]}} (default GATEWAY_API_KEYS_FILE; none: open)', arg.nonEmpty().optional()),
    'max-body-bytes': option('N', 'larger bodies get 413', arg.integerAtLeast(1024).default(1024 * 1024)),
    'max-records': option('N', 'more records in one request get 413', arg.positiveInteger().default(10_000)),
    'ack-timeout-ms': option('T', 'a request Kafka has not acknowledged within T gets 503', arg.integerAtLeast(1000).default(10_000)),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const { port, 'max-body-bytes': maxBodyBytes, 'max-records': maxRecords, 'ack-timeout-ms': ackTimeoutMs } = values;
  const config = loadConfig();
  const keysFile = values['api-keys'] ?? config.GATEWAY_API_KEYS_FILE;
  let apiKeys;
  if (keysFile) {
    try {
      apiKeys = readApiKeys(keysFile);
    } catch (error) {
      throw new LakestreamError('USAGE', `API keys (--api-keys / GATEWAY_API_KEYS_FILE) from ${keysFile}: ${errorMessage(error)}`);
    }
  }
  const log = createLogger('gateway');
  // a request waits for one registry retry at most; Redis (idempotency keys) gives up fast
  const context = createClientContext(config, { namespace: values.namespace, component: 'gateway', registryRetries: 1, redis: { connectTimeout: 3_000 } });
  const gateway = await startGateway(context, { port, host: values.host, maxBodyBytes, maxRecords, ackTimeoutMs, apiKeys, log }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') throw new LakestreamError('USAGE', `port ${port} on ${values.host} is in use: choose another with --port`);
    throw error;
  });
  console.log(`gateway: ${gateway.url} (order page), ${gateway.url}openapi.json`);
  log.info('gateway listening', { url: gateway.url, namespace: values.namespace || '(production)', apiKeys: apiKeys?.size ?? 0 });
  const stop = () => void gateway.close().then(() => context.close()).finally(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runCli('gateway', main);
