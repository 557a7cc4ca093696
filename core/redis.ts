import { Redis } from 'ioredis';
import type { Config } from './config.ts';

export function createRedis(config: Pick<Config, 'REDIS_URL'>): Redis {
  return new Redis(config.REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 5, enableAutoPipelining: false });
}
