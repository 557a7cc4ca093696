import type { TestContext } from 'node:test';
import { createAvroDecoder } from '../../core/avro.ts';
import { createClientContext } from '../../platform/context.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createLogger } from '../../core/log.ts';
import { startGateway, type GatewayOptions } from '../../gateway/server.ts';
import { config, onCleanup, uniqueName } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

export interface Published {
  partition: number;
  offset: number;
  value: Record<string, unknown>;
}

/**
 * A gateway on a namespaced pipeline of its own, and what reaches its topics: every record read
 * back from Kafka (read committed), decoded, with where it was stored.
 */
export async function setupGateway(t: TestContext, label: string, options: Partial<GatewayOptions> = {}) {
  const pipeline = await setupPipeline(t, label);
  const context = createClientContext(config, { namespace: pipeline.namespace, component: 'gateway-test', registryRetries: 1, redis: { connectTimeout: 3_000 } });
  onCleanup(t, () => context.close());
  const gateway = await startGateway(context, {
    port: 0,
    host: '127.0.0.1',
    maxBodyBytes: 64 * 1024,
    maxRecords: 100,
    ackTimeoutMs: 10_000,
    log: createLogger('gateway-test'),
    ...options,
  });
  onCleanup(t, () => gateway.close());
  const post = (topic: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(new URL(`/v1/topics/${topic}/records`, gateway.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    });

  const decode = createAvroDecoder(pipeline.registry);
  const seen = new Map<string, Published[]>();
  /** Starts reading `topics` (gateway names) from their beginning. */
  const read = async (...topics: string[]) => {
    const consumer = createConsumer(config, uniqueName(`${label}-reader`));
    await consumer.connect();
    onCleanup(t, () => consumer.disconnect());
    const kafkaNames = new Map(topics.map((topic) => [`${pipeline.namespace}.${topic}`, topic]));
    await consumer.subscribe({ topics: [...kafkaNames.keys()] });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const list = seen.get(kafkaNames.get(topic)!) ?? [];
        list.push({ partition, offset: Number(message.offset), value: (await decode(message.value)).value });
        seen.set(kafkaNames.get(topic)!, list);
      },
    });
  };
  const published = (topic: string) => seen.get(topic) ?? [];
  return { ...pipeline, gateway, post, read, published };
}

let orderCount = 0;
export const order = (overrides: Record<string, unknown> = {}) => ({
  order_id: `order-${Date.now().toString(36)}-${++orderCount}`,
  customer_name: 'Ada Lovelace',
  user_id: 42,
  product: 'lipstick 7',
  quantity: 2,
  unit_price: 12.5,
  order_time: Date.now(),
  ...overrides,
});
