import { arg, defineCommand, option, repeated, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { redisFailure } from '../core/redis.ts';
import { createClientContext } from '../platform/context.ts';
import { readPromoSummary } from './promo-summary.ts';
import { readFeatures } from './online-store.ts';
import { buildTrainingSet } from './training-set.ts';
import { checkWindows } from './check.ts';

const command = defineCommand({
  name: 'features',
  usage: [
    'pnpm run features -- user <user_id> [<user_id> …] [--namespace NS]',
    'pnpm run features -- session <user_session> [<user_session> …] [--namespace NS]',
    'pnpm run features -- promo [--namespace NS]',
    'pnpm run features -- training-set --entities rows.csv --out training.parquet [--feature <view>:<feature> …]',
    'pnpm run features -- check [--sample N] [--seed S] [--namespace NS]',
  ],
  description: `Prints online features as JSON, read from Redis in one round trip: a user's transaction count,
a shop session's latest purchase probability and features (null for an id with none), or the
promo's running economics (offers, conversions with and without the discount, revenue, discount
cost and margin, money in cents).

training-set writes point-in-time training data from the lake: each row of --entities (a join key
such as user_id, event_timestamp, and any label) with the feature values as they were at that
time, never later ones (null where the entity had none yet).

check compares the windowed features (user_transaction_windows) the stream emitted with the same
declaration computed by DuckDB over the archived transactions (the backfill's engine), for a
sample of users, and their values in Redis with the last of those rows; it prints the match rate
and exits non-zero below 100%. Run it on a settled pipeline: rows one archive does not hold yet
are left out, and so are rows a backfill rewrote.`,
  positionals: true,
  options: {
    namespace: option('NS', "a namespaced pipeline's features", arg.text().default('')),
    entities: option('FILE', 'training-set: entity rows, .csv or .parquet, with event_timestamp (a timestamp, UTC if without zone, or epoch ms)', arg.nonEmpty().optional()),
    out: option('FILE', 'training-set: where to write it, .parquet or .csv', arg.nonEmpty().optional()),
    feature: repeated('REF', 'training-set: a feature <view>:<feature> (default user_transaction_counts:total_transactions_count)', arg.nonEmpty()),
    sample: option('N', 'check: users to compare', arg.positiveInteger().default(200)),
    seed: option('S', 'check: picks the sample (the same seed, the same users)', arg.nonNegative().default(1)),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  const [entity, ...ids] = positionals;
  if (entity === 'training-set') {
    if (ids.length) return command.refuse('training-set takes no ids');
    if (!values.entities || !values.out) return command.refuse('training-set needs --entities FILE and --out FILE');
    const started = performance.now();
    const features = values.feature.length ? values.feature : ['user_transaction_counts:total_transactions_count'];
    const { rows, matched } = await buildTrainingSet(loadConfig(), values.namespace, { entities: values.entities, out: values.out, features });
    const found = Object.entries(matched).map(([view, n]) => `${view} for ${n}`).join(', ');
    console.error(`training-set: ${rows} rows written to ${values.out} (features found: ${found}) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return;
  }
  if (entity === 'check') {
    if (ids.length) return command.refuse('check takes no ids');
    const context = createClientContext(loadConfig(), { namespace: values.namespace, component: 'features', redis: { maxRetriesPerRequest: 1, connectTimeout: 3_000 } });
    try {
      const started = performance.now();
      const result = await checkWindows(context.config, values.namespace, { sample: values.sample, seed: values.seed, redis: context.redis() });
      console.log(JSON.stringify(result, null, 2));
      const percent = (result.matchRate * 100).toFixed(2);
      console.error(
        `check: ${result.users} users, ${result.compared} rows compared (${result.matched} equal, ${result.missingFromStream} missing from the stream, ${result.extraInStream} only in the stream, ${result.late} late${result.backfilled ? `, ${result.backfilled} written by a backfill, not compared` : ''}), ` +
          `Redis ${result.online.matched}/${result.online.compared} equal${result.online.ahead ? ` (${result.online.ahead} ahead of the lake, not compared)` : ''}${result.unpositioned ? `; ${result.unpositioned} archived transactions without a Kafka position left out` : ''}: match rate ${percent}% in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
      if (!result.compared && !result.online.compared) throw new LakestreamError('USAGE', 'check: nothing to compare (no archived transactions with a Kafka position, or no windowed features in the lake yet)');
      if (result.matchRate < 1) process.exitCode = 1;
    } finally {
      await context.close();
    }
    return;
  }
  const known = ((entity === 'user' || entity === 'session') && ids.length > 0) || (entity === 'promo' && !ids.length);
  if (!known) return command.refuse(entity === 'user' || entity === 'session' ? `name at least one ${entity} id` : entity === 'promo' ? 'promo takes no ids' : 'expected user, session, promo, training-set or check');
  if (entity === 'user') {
    for (const id of ids) {
      const n = Number(id);
      if (!Number.isInteger(n) || n < 0) throw new LakestreamError('USAGE', `user ids are non-negative integers, got ${JSON.stringify(id)}`);
    }
  }
  // Someone is waiting at a prompt: give up after one reconnect and a short connect timeout
  // instead of the sinks' patient defaults.
  const context = createClientContext(loadConfig(), { namespace: values.namespace, component: 'features', redis: { maxRetriesPerRequest: 1, connectTimeout: 3_000 } });
  const redis = context.redis();
  try {
    const { features } = context.catalog;
    const read = async (): Promise<unknown> => {
      if (entity === 'promo') return readPromoSummary(redis, features.promoEconomics);
      const feature = entity === 'user' ? features.userTransactionCounts : features.sessionScores;
      const rows = await readFeatures(redis, feature, entity === 'user' ? ids.map(Number) : ids);
      return Object.fromEntries(ids.map((id, i) => [id, rows[i]]));
    };
    const result = await read().catch((error: unknown) => {
      throw redisFailure(redis, context.config.REDIS_URL, error);
    });
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await context.close();
  }
}

// A client that never connected still holds a 2 s disconnect timer (ioredis): do not wait for it.
runCli('features', main);
