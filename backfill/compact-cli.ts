import { createClientContext } from '../platform/context.ts';
import { arg, defineCommand, expect, flag, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { formatCount } from '../core/stats.ts';
import { compactDay, compactionTarget } from './compact.ts';

const command = defineCommand({
  name: 'compact',
  usage: ['pnpm run compact -- --table <transactions|user_transaction_counts> --dt YYYY-MM-DD [options]'],
  description: `Merges the small files of each hour partition of one event day into one file per hour, one
Iceberg replace snapshot per hour. Query results are the same before and after; safe while the
sinks are writing; idempotent. An hour not yet ended is left alone unless --include-open-hour.
Afterwards, data files older than a day that the current snapshot does not reference are deleted.`,
  options: {
    table: option('T', 'the lake table, e.g. transactions or user_transaction_counts', arg.nonEmpty().optional()),
    dt: option('YYYY-MM-DD', 'the event day', arg.day().optional()),
    hour: option('HH', 'only this hour', expect('two digits 00-23', (raw) => (/^([01]\d|2[0-3])$/.test(raw) ? raw : undefined)).optional()),
    'include-open-hour': flag('also compact the current UTC hour'),
    namespace: option('NS', "a namespaced pipeline's tables", arg.text().default('')),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  if (!values.table || !values.dt) return command.refuse('--table and --dt are required');
  const target = compactionTarget(values.table, values.namespace);
  const started = Date.now();
  const context = createClientContext(loadConfig(), { namespace: values.namespace, component: 'compaction' });
  const results = await compactDay(context, target, values.dt, { hour: values.hour, includeOpenHour: values['include-open-hour'] }).finally(() => context.close());
  for (const result of results) {
    console.log(
      `${result.dt} hour=${result.hour}: ${result.output ? `${result.inputs} files -> 1 (${formatCount(result.rows)} rows)` : `skipped (${result.skipped}, ${result.inputs} file${result.inputs === 1 ? '' : 's'})`}${result.retries ? `, ${result.retries} commit${result.retries === 1 ? '' : 's'} made again on a table the sinks moved meanwhile` : ''}`,
    );
  }
  const merged = results.filter((r) => r.output);
  console.log(
    `compact: ${target.view} dt=${values.dt}: ${merged.reduce((s, r) => s + r.inputs, 0)} files merged into ${merged.length} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

runCli('compact', main);
