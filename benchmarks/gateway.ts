import { createClientContext } from '../platform/context.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { arg, defineCommand, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { createAdmin } from '../core/kafka.ts';
import { createLogger } from '../core/log.ts';
import { createObjectStore } from '../core/object-store.ts';
import { createRedis } from '../core/redis.ts';
import { createS3 } from '../core/s3.ts';
import { createRegistry } from '../core/registry.ts';
import { startGateway } from '../gateway/server.ts';
import { applyInfra } from '../infra/apply.ts';
import { dropNamespace } from '../infra/namespace.ts';
import { topicsFor } from '../infra/topics.ts';
import { runWrk, wrkPostScript, type WrkFigures } from './wrk.ts';

const command = defineCommand({
  name: 'bench:gateway',
  usage: ['pnpm run bench:gateway [-- options]'],
  description: `wrk (Debian's) against the gateway on loopback, on a namespace of its own (dropped afterwards):
POST of one order per request (each acknowledged by Kafka with acks=all), of a batch of orders
per request, and GET /healthz beside them as the HTTP server's own ceiling. Prints requests/s,
records/s and latency percentiles.`,
  options: {
    seconds: option('N', "each run's length", arg.positiveInteger().default(15)),
    connections: option('N', 'concurrent connections', arg.positiveInteger().default(32)),
    batch: option('N', 'orders per request in the batch run', arg.positiveInteger().default(100)),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { seconds, connections, batch } = args.values;
  const config = loadConfig();
  const namespace = `bench-gateway-${Date.now().toString(36)}`;
  const admin = createAdmin(config, 'lakestream-bench');
  await applyInfra(topicsFor(namespace), { admin, registry: createRegistry(config), registryUrl: config.SCHEMA_REGISTRY_URL });
  const context = createClientContext(config, { namespace, component: 'gateway', registryRetries: 1, redis: { connectTimeout: 3_000 } });
  const gateway = await startGateway(context, { port: 0, host: '127.0.0.1', maxBodyBytes: 4 * 1024 * 1024, maxRecords: 10_000, ackTimeoutMs: 10_000, log: createLogger('gateway') });
  const dir = mkdtempSync(join(tmpdir(), 'lakestream-wrk-'));
  const order = (i: number) => ({ order_id: `bench-order-${i.toString().padStart(8, '0')}`, customer_name: 'Bench', user_id: i % 1000, product: `product ${i % 50}`, quantity: 1 + (i % 3), unit_price: 9.99, order_time: Date.UTC(2026, 10, 23) });
  const script = (name: string, body: unknown) => wrkPostScript(dir, name, body);
  try {
    const url = new URL('/v1/topics/orders/records', gateway.url).toString();
    console.log(`bench:gateway: wrk -t2 -c${connections} -d${seconds}s on loopback, namespace ${namespace}`);
    await runWrk(url, 2, connections, script('warmup', order(0)));
    const health = await runWrk(new URL('/healthz', gateway.url).toString(), seconds, connections);
    const single = await runWrk(url, seconds, connections, script('single', order(1)));
    const batched = await runWrk(url, seconds, connections, script('batch', Array.from({ length: batch }, (_, i) => order(i))));
    const row = (label: string, f: WrkFigures, perRequest: number) =>
      `| ${label} | ${Math.round(f.requestsPerSecond).toLocaleString('en-US')} | ${Math.round(f.requestsPerSecond * perRequest).toLocaleString('en-US')} | ${f.p50Ms.toFixed(2)} | ${f.p99Ms.toFixed(2)} | ${f.non2xx} | ${f.errors} |`;
    console.log(['', '| run | requests/s | records/s | p50 ms | p99 ms | non-2xx | socket errors |', '|---|---:|---:|---:|---:|---:|---:|',
      row('GET /healthz (HTTP server alone, the ceiling)', health, 0),
      row('POST 1 order per request (acks=all each)', single, 1),
      row(`POST ${batch} orders per request`, batched, batch),
      '', `one order per request runs at ${((single.requestsPerSecond / health.requestsPerSecond) * 100).toFixed(0)}% of the bare server's request rate`].join('\n'));
  } finally {
    await gateway.close();
    await context.close();
    const redis = createRedis(config);
    const s3 = createS3(config);
    await dropNamespace(config, namespace, { admin, objectStore: createObjectStore(s3, config.LAKE_BUCKET), redis }).catch(() => {});
    redis.disconnect();
    s3.destroy();
    await admin.close();
  }
}

runCli('bench:gateway', main);
