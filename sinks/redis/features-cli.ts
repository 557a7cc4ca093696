import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { createRedis } from '../../core/redis.ts';
import { pipelineNames } from '../../pipeline/jobs.ts';
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
  const redis = createRedis(loadConfig());
  try {
    const features = await getUserFeatures(redis, userIds, pipelineNames(values.namespace ?? '').userKeyPrefix);
    console.log(JSON.stringify(Object.fromEntries(userIds.map((id, i) => [id, features[i]])), null, 2));
  } finally {
    await redis.quit();
  }
}

runCli('features', main);
