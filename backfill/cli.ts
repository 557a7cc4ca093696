import { createClientContext } from '../platform/context.ts';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { arg, defineCommand, expect, flag, option, runCli } from '../core/cli.ts';
import { loadConfig, repoRoot } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { formatCount } from '../core/stats.ts';
import { BACKFILLED_FEATURES, backfillLayout, openDayBackfiller, planDays, type BackfilledFeature, type DayPlan } from './features.ts';

const shardOption = expect('I/N with 0 <= I < N', (raw) => {
  const match = /^(\d+)\/(\d+)$/.exec(raw);
  return match && Number(match[1]) < Number(match[2]) ? { index: Number(match[1]), of: Number(match[2]) } : undefined;
});

const command = defineCommand({
  name: 'backfill',
  usage: ['pnpm run backfill [-- options]'],
  description: `Rebuilds the feature history of the transactions from the archived transactions (the Iceberg
table lake.transactions) into the Iceberg tables lake.user_transaction_counts (running counts) and
lake.user_transaction_windows (1 h, 24 h and 7 d windows, the declaration the stream job runs),
one overwrite snapshot per table and event day it covers (readers see a day before or after,
never half of it). Storage only: it never writes to Redis or Kafka. Idempotent: running it again,
or after a crash, commits nothing new for a day whose rows did not change.`,
  options: {
    feature: option('NAME', `which feature table: ${BACKFILLED_FEATURES.join(', ')} or all`, arg.oneOf([...BACKFILLED_FEATURES, 'all'] as const).default('all')),
    from: option('YYYY-MM-DD', 'first event day (default: the first archived day)', arg.day().optional()),
    to: option('YYYY-MM-DD', 'last event day (default: the last archived day)', arg.day().optional()),
    'dry-run': flag('print what would be read and written, write nothing'),
    workers: option('N', 'split the days across N processes', arg.positiveInteger().default(1)),
    shard: option('I/N', 'process only days I, I+N, I+2N, … of the range (for running shards on several machines)', shardOption.default({ index: 0, of: 1 })),
    'memory-limit': option('M', 'DuckDB memory per process before spilling to disk', arg.nonEmpty().default('1GB')),
    namespace: option('NS', "a namespaced pipeline's tables", arg.text().default('')),
    report: option('json', "one JSON line per day instead of the progress bar (what the workers print)", arg.oneOf(['json'] as const).optional()),
  },
});

interface Totals {
  feature: BackfilledFeature;
  days: number;
  filesRead: number;
  rowsRead: number;
  rowsWritten: number;
  rowsKept: number;
  filesWritten: number;
  filesRemoved: number;
  rebases: number;
}

function progressLine(done: Totals, plannedDays: number, plannedFiles: number, startedAt: number): string {
  const seconds = (Date.now() - startedAt) / 1000;
  const rate = done.rowsRead / Math.max(seconds, 0.001);
  const fraction = plannedFiles ? done.filesRead / plannedFiles : 1;
  const width = 24;
  const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '-');
  const eta = fraction > 0 && fraction < 1 ? `ETA ${Math.round((seconds / fraction) * (1 - fraction))}s` : '';
  return `backfill ${done.feature} [${bar}] ${done.days}/${plannedDays} days  files ${formatCount(done.filesRead)}/${formatCount(plannedFiles)}  rows read ${formatCount(done.rowsRead)}  written ${formatCount(done.rowsWritten)}  ${formatCount(rate)} rows/s  ${eta}`;
}

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  if (values.from && values.to && values.from > values.to) throw new LakestreamError('USAGE', `--from ${values.from} is after --to ${values.to}`);
  const { workers, shard } = values;

  const config = loadConfig();
  const context = createClientContext(config, { namespace: values.namespace, component: 'backfill' });
  const layout = backfillLayout(context.catalog, config.LAKE_BUCKET);
  // a failure exits the process (runCli); on success the clients are closed so it can exit
  const all = await planDays(context, layout, { from: values.from, to: values.to });
  const mine = all.filter((_, index) => index % shard.of === shard.index);
  const report = values.report === 'json';
  const plannedFiles = mine.reduce((sum, d) => sum + d.files, 0);
  if (!report) {
    console.error(`backfill: ${mine.length} event days (${mine[0]?.dt ?? '-'} … ${mine.at(-1)?.dt ?? '-'}), ${plannedFiles} archive files, ${workers} worker${workers > 1 ? 's' : ''}${values['dry-run'] ? ', dry run' : ''}`);
  }

  const features: BackfilledFeature[] = values.feature === 'all' ? [...BACKFILLED_FEATURES] : [values.feature];
  for (const feature of features) await backfillFeature(feature);
  await context.close();

  /** One feature table over the planned days, in this process or in `workers` child processes. */
  async function backfillFeature(feature: BackfilledFeature): Promise<void> {
    const view = layout[feature].view;
    const totals: Totals = { feature, days: 0, filesRead: 0, rowsRead: 0, rowsWritten: 0, rowsKept: 0, filesWritten: 0, filesRemoved: 0, rebases: 0 };
    const startedAt = Date.now();
    /** The worker processes that reported a day (none when this process did the days itself). */
    const processes = new Set<number>();
    const account = (result: Omit<Totals, 'days' | 'feature'>) => {
      totals.days++;
      totals.filesRead += result.filesRead;
      totals.rowsRead += result.rowsRead;
      totals.rowsWritten += result.rowsWritten;
      totals.rowsKept += result.rowsKept;
      totals.filesWritten += result.filesWritten;
      totals.filesRemoved += result.filesRemoved;
      totals.rebases += result.rebases ?? 0;
      if (!report) process.stderr.write(`\r${progressLine(totals, mine.length, plannedFiles, startedAt)}`);
    };

    // a process given --shard is one of the workers (or one of several machines): it does its days itself
    if (workers > 1 && shard.of === 1) {
      const children = Array.from({ length: workers }, (_, index) => {
        const args = ['--import', 'tsx', `${repoRoot}/backfill/cli.ts`, '--feature', feature, '--shard', `${index}/${workers}`, '--report', 'json', '--memory-limit', values['memory-limit']];
        for (const name of ['from', 'to', 'namespace'] as const) if (values[name]) args.push(`--${name}`, values[name]!);
        if (values['dry-run']) args.push('--dry-run');
        const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const day = JSON.parse(line) as Omit<Totals, 'days' | 'feature'> & { pid: number };
          processes.add(day.pid);
          account(day);
        });
        return new Promise<number | null>((resolve) => child.once('exit', resolve));
      });
      const codes = await Promise.all(children);
      if (codes.some((code) => code !== 0)) throw new LakestreamError('USAGE', `a backfill worker of ${view} failed (exit codes ${codes.join(', ')}); re-run: the result is the same as one clean run`);
    } else {
      const backfiller = await openDayBackfiller(context, layout, values['memory-limit'], feature);
      try {
        for (const plan of mine as DayPlan[]) {
          const result = await backfiller.run(plan, { dryRun: values['dry-run'], afterFirstUpload: testPause });
          const counts = { filesRead: result.filesRead, rowsRead: result.rowsRead, rowsWritten: result.rowsWritten, rowsKept: result.rowsKept, filesWritten: result.filesWritten.length, filesRemoved: result.filesRemoved.length, rebases: result.rebases };
          if (report) console.log(JSON.stringify({ feature, dt: plan.dt, pid: process.pid, ...counts }));
          else account(counts);
          if (values['dry-run'] && !report) {
            process.stderr.write('\n');
            console.log(
              `${plan.dt}: would read ${result.filesRead} files (${formatCount(result.rowsRead)} rows), write ${result.filesWritten.length} files ` +
                `${view} dt=${plan.dt} (${formatCount(result.rowsWritten)} rows) and remove ${result.filesRemoved.length} stale objects`,
            );
          }
        }
      } finally {
        backfiller.close();
      }
    }
    if (report) return;
    const seconds = (Date.now() - startedAt) / 1000;
    process.stderr.write('\n');
    console.log(
      `backfill ${view}: ${values['dry-run'] ? 'dry run: ' : ''}${totals.days} days, ${formatCount(totals.filesRead)} files and ${formatCount(totals.rowsRead)} rows read, ` +
        `${formatCount(totals.rowsWritten)} rows in ${totals.filesWritten} files ${values['dry-run'] ? 'would be ' : ''}written` +
        (totals.rowsKept ? ` (${formatCount(totals.rowsKept)} of them stream rows kept: their transactions are not archived yet)` : '') +
        `, ${totals.filesRemoved} stale objects ${values['dry-run'] ? 'would be ' : ''}removed, ` +
        (totals.rebases ? `${totals.rebases} commits made again on a table the sinks moved meanwhile, ` : '') +
        `${seconds.toFixed(1)} s, ${formatCount(totals.rowsRead / Math.max(seconds, 0.001))} rows/s` +
        (processes.size ? `, days done by ${processes.size} worker process${processes.size > 1 ? 'es' : ''}` : ''),
    );
  }
}

/**
 * Tests kill a backfill mid-day: LAKESTREAM_BACKFILL_PAUSE_MS holds it after each day's first
 * upload, before its commit.
 */
async function testPause(): Promise<void> {
  const ms = Number(process.env.LAKESTREAM_BACKFILL_PAUSE_MS ?? 0);
  if (ms > 0) {
    console.error(`backfill: paused ${ms} ms after the first upload`);
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}

runCli('backfill', main);
