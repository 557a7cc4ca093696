import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config.ts';
import { isNetworkError, redactedUrl } from './errors.ts';
import { createLogger } from './log.ts';

const connectionErrors = new WeakMap<Redis, Error>();
const log = createLogger('redis');

/** `overrides` lets a one-shot command give up sooner than a long-running sink. */
export function createRedis(config: Pick<Config, 'REDIS_URL'>, overrides: RedisOptions = {}): Redis {
  const redis = new Redis(config.REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 5, enableAutoPipelining: false, ...overrides });
  // With no 'error' listener ioredis prints a stack trace for every failed (re)connect, in every
  // process. Listening hides nothing: commands still reject, listeners a caller adds still get
  // every error, redisFailure() tells which connection error a rejection comes from, and a
  // long-running process logs one line when an established connection is lost.
  let wasReady = false;
  let lost = false;
  redis.on('error', (error: Error) => {
    connectionErrors.set(redis, error);
    if (wasReady && !lost) {
      lost = true;
      log.warn('connection lost, reconnecting', { redis: redactedUrl(config.REDIS_URL), error: error.message });
    }
  });
  redis.on('ready', () => {
    connectionErrors.delete(redis);
    if (lost) log.info('reconnected', { redis: redactedUrl(config.REDIS_URL) });
    wasReady = true;
    lost = false;
  });
  return redis;
}

/**
 * What to report for a failed command. While the client is not connected, the command only says
 * it ran out of retries; the connection error behind it, with the server, is the useful reason.
 */
export function redisFailure(redis: Redis, url: string, error: unknown): Error {
  const connection = connectionErrors.get(redis);
  if (!connection || redis.status === 'ready') return error instanceof Error ? error : new Error(String(error));
  const what = isNetworkError(connection) ? 'is unreachable' : 'refused the connection';
  return new Error(`Redis at ${redactedUrl(url)} ${what}: ${connection.message}`, { cause: error });
}
