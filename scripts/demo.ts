import { spawnSync } from 'node:child_process';
import { loadConfig, repoRoot } from '../core/config.ts';
import { openLake } from '../core/lake.ts';
import { sleep } from '../core/retry.ts';
import { startPipeline } from './pipeline-process.ts';

/**
 * The end-to-end demo behind README's first command: the local stack, the topics and schemas, a
 * burst of transactions through the whole pipeline, then a lake query and a Redis lookup.
 */
const BURST = 5_000;

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

async function lakeRows(): Promise<{ transactions: number; features: number }> {
  const lake = await openLake(loadConfig());
  try {
    const reader = await lake.connection.runAndReadAll(
      'SELECT (SELECT count(*) FROM transactions)::INTEGER AS transactions, (SELECT count(*) FROM user_transaction_counts)::INTEGER AS features',
    );
    return reader.getRowObjectsJS()[0] as { transactions: number; features: number };
  } finally {
    lake.close();
  }
}

step('1/6 start the local stack (the first run downloads and builds the servers)', ['run', 'stack:up']);
step('2/6 create topics and register schemas', ['run', 'infra:apply']);
const before = await lakeRows();
step(`3/6 produce ${BURST} transactions spread over the past 2 days`, ['run', 'producer', '--', 'transactions', '--count', String(BURST), '--days', '2', '--users', '200']);

console.log('\n=== 4/6 run the pipeline (backup to the lake, features job, feature sinks) until the burst is through\n$ pnpm run pipeline');
const pipeline = startPipeline(['--flush-interval-ms', '2000']);
const deadline = Date.now() + 180_000;
for (;;) {
  const now = await lakeRows();
  const archived = now.transactions - before.transactions;
  const counted = now.features - before.features;
  process.stdout.write(`\r  archived ${archived}/${BURST}, feature rows ${counted}/${BURST}   `);
  if (archived >= BURST && counted >= BURST) break;
  if (Date.now() > deadline || pipeline.exitCode() !== undefined) {
    console.error(`\ndemo: the pipeline did not get the burst through; its last logs:\n${pipeline.log().slice(-4_000)}`);
    await pipeline.stop();
    process.exit(1);
  }
  await sleep(1_000);
}
const code = await pipeline.stop();
if (code !== 0) {
  console.error(`\ndemo: the pipeline did not stop cleanly (exit ${code}); its last logs:\n${pipeline.log().slice(-4_000)}`);
  process.exit(1);
}
console.log('\n  pipeline stopped cleanly (SIGTERM flushes and commits)');

const top = step('5/6 query the lake with DuckDB: the busiest users', [
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
step('6/6 look their features up in Redis, as ML serving does', ['run', 'features', '--', 'user', ...ids]);
console.log('\ndemo: done. More: `pnpm run sql -- -f sql/duplicates.sql`, `pnpm run stack:status`, `pnpm run stack:down`.');
