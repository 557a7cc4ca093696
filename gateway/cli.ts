import { createClientContext } from '../core/context.ts';
import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { readApiKeys, startGateway } from './server.ts';

const usage = helpText(`Usage: pnpm run gateway [-- options]

HTTP → Kafka for clients that do not speak Kafka:
  POST /v1/topics/{topic}/records   one JSON record or an array (orders, input-products, transactions, shop-events)
  GET  /                            an order page that publishes to orders
  GET  /openapi.json                the API, generated from the registered Avro schemas
  GET  /healthz, /readyz, /metrics

A POST with an Idempotency-Key header is published at most once however often it is retried
(the key's outcome is kept in Redis, REDIS_URL, for 24 h).

Options:
  --port P            port (default 8088; 0: any free port)
  --host H            address (default 127.0.0.1; 0.0.0.0 to serve the network)
  --namespace NS      publish to a namespaced pipeline's topics
  --api-keys FILE     require API keys: {"<key>": {"client": "shop-a", "topics": ["orders"]}} (default GATEWAY_API_KEYS_FILE; none: open)
  --max-body-bytes N  larger bodies get 413 (default 1048576)
  --max-records N     more records in one request get 413 (default 10000)
  --ack-timeout-ms T  a request Kafka has not acknowledged within T gets 503 (default 10000)
  -h, --help
`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: cliArgs(),
    options: {
      port: { type: 'string', default: '8088' },
      host: { type: 'string', default: '127.0.0.1' },
      namespace: { type: 'string', default: '' },
      'api-keys': { type: 'string' },
      'max-body-bytes': { type: 'string', default: String(1024 * 1024) },
      'max-records': { type: 'string', default: '10000' },
      'ack-timeout-ms': { type: 'string', default: '10000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const integer = (name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new LakestreamError('USAGE', `--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    return n;
  };
  const port = integer('port', values.port, 0, 65535);
  const maxBodyBytes = integer('max-body-bytes', values['max-body-bytes'], 1024);
  const maxRecords = integer('max-records', values['max-records'], 1);
  const ackTimeoutMs = integer('ack-timeout-ms', values['ack-timeout-ms'], 1000);
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
