import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { createRedis, redisFailure } from '../../core/redis.ts';
import { catalog } from '../../core/catalog.ts';
import { getUserFeatures } from './online-store.ts';

const usage = helpText(`Usage: pnpm run features -- user <user_id> [<user_id> …] [--namespace NS]

Prints the online features of the given users as JSON, read from Redis in one round trip
(null for a user with none).
`);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: cliArgs(),
    allowPositionals: true,
    options: { namespace: { type: 'string', default: '' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  const [entity, ...ids] = positionals;
  if (values.help || entity !== 'user' || !ids.length) {
    console.log(usage);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const userIds = ids.map((id) => {
    const n = Number(id);
    if (!Number.isInteger(n) || n < 0) throw new LakestreamError('USAGE', `user ids are non-negative integers, got ${JSON.stringify(id)}`);
    return n;
  });
  const config = loadConfig();
  // Someone is waiting at a prompt: give up after one reconnect and a short connect timeout
  // instead of the sinks' patient defaults.
  const redis = createRedis(config, { maxRetriesPerRequest: 1, connectTimeout: 3_000 });
  try {
    const features = await getUserFeatures(redis, userIds, catalog(values.namespace ?? '').features.userTransactionCounts.redisPrefix).catch((error: unknown) => {
      throw redisFailure(redis, config.REDIS_URL, error);
    });
    console.log(JSON.stringify(Object.fromEntries(userIds.map((id, i) => [id, features[i]])), null, 2));
  } finally {
    // without a connection there is nothing to flush, only a reconnect loop to end
    if (redis.status === 'ready') await redis.quit();
    else redis.disconnect();
  }
}

// A client that never connected still holds a 2 s disconnect timer (ioredis): do not wait for it.
runCli('features', main, { exitOnError: true });
