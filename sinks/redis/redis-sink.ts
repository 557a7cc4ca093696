import type { KafkaJS } from '@confluentinc/kafka-javascript';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { createAvroDecoder } from '../../core/avro.ts';
import type { Config } from '../../core/config.ts';
import { createConsumer } from '../../core/kafka.ts';
import { createLogger, type Logger } from '../../core/log.ts';
import { createRedis } from '../../core/redis.ts';
import { createRegistry } from '../../core/registry.ts';
import { retry } from '../../core/retry.ts';
import { DEFAULT_USER_KEY_PREFIX, writeUserFeatures, type UserFeatures } from './online-store.ts';

export const redisSinkOptionsSchema = z
  .object({
    name: z.string().default('user-transaction-counts-redis-sink').describe('Consumer group.'),
    topic: z.string().default('user-transaction-counts'),
    keyPrefix: z.string().default(DEFAULT_USER_KEY_PREFIX).describe('Redis key prefix of the per-user hashes.'),
  })
  .strict();

export type RedisSinkOptions = z.input<typeof redisSinkOptionsSchema>;

/**
 * Keeps `feat:user:{id}` in Redis equal to the latest committed count of each user. Reads with
 * read_committed (aborted feature updates never reach serving), writes each batch as one
 * pipelined round trip of guarded absolute writes, then commits the offsets: a replay after a
 * crash rewrites the same values, which the guard turns into no-ops.
 */
export function createRedisSink(optionsInput: RedisSinkOptions, deps: { config: Config; registry?: SchemaRegistry; redis?: Redis; log?: Logger }) {
  const options = redisSinkOptionsSchema.parse(optionsInput);
  const log = deps.log ?? createLogger('redis-sink', { sink: options.name });
  const decode = createAvroDecoder(deps.registry ?? createRegistry(deps.config));
  const ownsRedis = !deps.redis;
  const redis = deps.redis ?? createRedis(deps.config);
  const stats = { records: 0, applied: 0, batches: 0 };
  let consumer: KafkaJS.Consumer | undefined;
  let stopped: Promise<void> | undefined;

  async function handleBatch(batch: KafkaJS.Batch): Promise<void> {
    // Within a batch only each user's last update matters.
    const latest = new Map<number, UserFeatures>();
    for (const message of batch.messages) {
      if (!message.value) continue;
      const pending = decode(message.value);
      const { value } = pending instanceof Promise ? await pending : pending;
      const userId = Number(value.user_id);
      latest.set(userId, { user_id: userId, total_transactions_count: Number(value.total_transactions_count), updated_at: Number(value.event_timestamp_millis) });
    }
    const applied = await retry(() => writeUserFeatures(redis, [...latest.values()], options.keyPrefix), { retries: 5, shouldRetry: () => true });
    const next = String(Number(batch.messages[batch.messages.length - 1]!.offset) + 1);
    await consumer!.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
    stats.records += batch.messages.length;
    stats.applied += applied;
    stats.batches++;
  }

  return {
    async start() {
      consumer = createConsumer(deps.config, options.name);
      await consumer.connect();
      await consumer.subscribe({ topics: [options.topic] });
      await consumer.run({ eachBatch: ({ batch }) => handleBatch(batch) });
      log.info('started', { topic: options.topic, keyPrefix: options.keyPrefix });
    },
    stop() {
      stopped ??= (async () => {
        await consumer?.disconnect();
        if (ownsRedis) await redis.quit();
        log.info('stopped', stats);
      })();
      return stopped;
    },
    stats: () => ({ ...stats }),
  };
}
