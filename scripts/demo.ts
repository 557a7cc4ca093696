import { spawnSync } from 'node:child_process';
import { catalog } from '../platform/catalog.ts';
import { cliArgs } from '../core/cli.ts';
import { loadConfig, repoRoot } from '../core/config.ts';
import { openLake } from '../platform/lake.ts';
import { createRedis } from '../core/redis.ts';
import { sleep } from '../core/retry.ts';
import { readPromoSummary } from '../features/promo-summary.ts';
import { startPipeline, type PipelineProcess } from './pipeline-process.ts';

/**
 * The end-to-end demo behind README's first command: the local stack, the topics and schemas,
 * transactions and a shop's history through the whole pipeline, a purchase model trained on that
 * history and loaded by the running scorer, live shop sessions scored and nudged by the promo,
 * then lake queries and Redis lookups.
 */
const usage = `Usage: pnpm run demo

The whole platform end to end on the local stack (started if needed): topics and schemas,
${'5,000'} transactions and a shop's history through the pipeline, a model trained and loaded by the
running scorer, live sessions and the promo, then SQL over the lake and Redis lookups. ~90 s.
Takes no options.`;
{
  const args = cliArgs();
  if (args.includes('--help') || args.includes('-h')) {
    console.log(usage);
    process.exit(0);
  }
  if (args.length) {
    console.error(`demo: takes no options, got ${args.join(' ')} (see --help)`);
    process.exit(2);
  }
}

const TRANSACTIONS = 5_000;
const HISTORY_SESSIONS = 2_000;
const LIVE_SESSIONS = 600;
const config = loadConfig();

function step(title: string, args: string[]): string {
  console.log(`\n=== ${title}\n$ pnpm ${args.join(' ')}`);
  const result = spawnSync('pnpm', ['--silent', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  process.stdout.write(result.stdout);
  if (result.status !== 0) {
    console.error(`demo: \`pnpm ${args.join(' ')}\` failed (exit ${result.status})`);
    process.exit(result.status ?? 1);
  }
  return result.stdout;
}

const VIEWS = ['transactions', 'user_transaction_counts', 'shop_events', 'session_predictions', 'promo_actions'] as const;
type Counts = Record<(typeof VIEWS)[number], number>;

async function lakeRows(): Promise<Counts> {
  const lake = await openLake(config);
  try {
    const reader = await lake.connection.runAndReadAll(`SELECT ${VIEWS.map((view) => `(SELECT count(*) FROM ${view})::INTEGER AS ${view}`).join(', ')}`);
    return reader.getRowObjectsJS()[0] as Counts;
  } finally {
    lake.close();
  }
}

const sentEvents = (output: string) => Number(/sent ([\d,]+) events/.exec(output)?.[1]?.replaceAll(',', '') ?? NaN);

/** Polls the lake until `done` says so, printing `progress`; on a timeout or a dead pipeline, shows its logs and exits. */
async function waitUntil(pipeline: PipelineProcess, what: string, probe: () => Promise<{ done: boolean; progress: string }>, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { done, progress } = await probe();
    process.stdout.write(`\r  ${progress}   `);
    if (done) break;
    if (Date.now() > deadline || pipeline.exitCode() !== undefined) {
      console.error(`\ndemo: the pipeline did not get ${what} through; its last logs:\n${pipeline.log().slice(-4_000)}`);
      await pipeline.stop();
      process.exit(1);
    }
    await sleep(1_000);
  }
  console.log();
}

step('1/9 start the local stack (the first run downloads and builds the servers)', ['run', 'stack:up']);
step('2/9 create topics and register schemas', ['run', 'infra:apply']);
const before = await lakeRows();
step(`3/9 produce ${TRANSACTIONS} transactions spread over the past 2 days`, ['run', 'producer', '--', 'transactions', '--count', String(TRANSACTIONS), '--days', '2', '--users', '200']);
const history = sentEvents(step(`4/9 produce a day of shop history: ${HISTORY_SESSIONS} sessions`, ['run', 'producer', '--', 'shop-events', '--sessions', String(HISTORY_SESSIONS), '--days', '1']));

console.log('\n=== 5/9 run the pipeline (lake sinks, features job, session scorer, promo, Redis sinks) until all of it is archived\n$ pnpm run pipeline');
const pipeline = startPipeline(['--flush-interval-ms', '2000']);
await waitUntil(pipeline, 'the history', async () => {
  const now = await lakeRows();
  const archived = now.transactions - before.transactions;
  const counted = now.user_transaction_counts - before.user_transaction_counts;
  const events = now.shop_events - before.shop_events;
  return {
    done: archived >= TRANSACTIONS && counted >= TRANSACTIONS && events >= history,
    progress: `transactions ${archived}/${TRANSACTIONS}, feature rows ${counted}/${TRANSACTIONS}, shop events ${events}/${history}`,
  };
});

step('6/9 train the purchase model on the lake; the running scorer loads it on SIGHUP', ['run', 'train']);
pipeline.reload();
const beforeLive = await lakeRows();
const live = sentEvents(step(`7/9 produce ${LIVE_SESSIONS} live shop sessions: scored, and the undecided offered 10% off`, ['run', 'producer', '--', 'shop-events', '--sessions', String(LIVE_SESSIONS)]));
const redis = createRedis(config);
let settled = { predictions: -1, polls: 0 };
await waitUntil(pipeline, 'the live sessions', async () => {
  const now = await lakeRows();
  const events = now.shop_events - beforeLive.shop_events;
  const predictions = now.session_predictions - beforeLive.session_predictions;
  const promo = await readPromoSummary(redis, catalog().features.promoEconomics);
  // predictions have no known total: done once every event is archived, predictions stop
  // growing, and the lake holds every promo action Redis has counted
  settled = predictions === settled.predictions ? { predictions, polls: settled.polls + 1 } : { predictions, polls: 0 };
  return {
    done: events >= live && predictions > 0 && settled.polls >= 3 && now.promo_actions === promo.actions,
    progress: `shop events ${events}/${live}, predictions ${predictions}, promo actions ${now.promo_actions - beforeLive.promo_actions} (offers so far: ${promo.offers})`,
  };
});
redis.disconnect();
const code = await pipeline.stop();
if (code !== 0) {
  console.error(`\ndemo: the pipeline did not stop cleanly (exit ${code}); its last logs:\n${pipeline.log().slice(-4_000)}`);
  process.exit(1);
}
console.log('  pipeline stopped cleanly (SIGTERM flushes and commits)');

const top = step('8/9 query the lake with DuckDB: the busiest users, then their features in Redis, as ML serving reads them', [
  'run',
  'sql',
  '--',
  `SELECT user_id, count(*) AS transactions, round(sum(amount), 2) AS net_amount FROM transactions GROUP BY user_id ORDER BY transactions DESC LIMIT 5`,
  '--format',
  'csv',
]);
const ids = top
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(',')[0]!);
step('8/9 (cont.)', ['run', 'features', '--', 'user', ...ids]);
step('8/9 (cont.) their windowed features (1 h, 24 h, 7 d) as the stream computed them, checked against DuckDB over the lake', ['run', 'features', '--', 'check', '--sample', '50']);
step('9/9 the shop: conversion by predicted probability, and does the promo pay off?', ['run', 'sql', '--', '-f', 'sql/conversion-by-band.sql']);
step('9/9 (cont.)', ['run', 'sql', '--', '-f', 'sql/promo-roi.sql']);
step('9/9 (cont.) the running economics ML serving and dashboards read from Redis', ['run', 'features', '--', 'promo']);
console.log('\ndemo: done. More: `pnpm run sql -- -f sql/shop-funnel.sql`, `pnpm run features -- session <id>`, `pnpm run dashboard` (the live page), `pnpm run gateway` (HTTP and the order page), `pnpm run stack:status`, `pnpm run stack:down`.');
