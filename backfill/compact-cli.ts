import { createClientContext } from '../core/context.ts';
import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { formatCount } from '../core/stats.ts';
import { compactDay, compactionTarget } from './compact.ts';
import { dayOption } from './day-option.ts';

const usage = helpText(`Usage: pnpm run compact -- --table <transactions|user_transaction_counts> --dt YYYY-MM-DD [options]

Merges the small files of each hour partition of one event day into one file per hour, one
Iceberg replace snapshot per hour. Query results are the same before and after; safe while the
sinks are writing; idempotent. An hour not yet ended is left alone unless --include-open-hour.
Afterwards, data files older than a day that the current snapshot does not reference are deleted.

Options:
  --table T             transactions or user_transaction_counts
  --dt YYYY-MM-DD       the event day
  --hour HH             only this hour
  --include-open-hour   also compact the current UTC hour
  --namespace NS        a namespaced pipeline's tables
  -h, --help
`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: cliArgs(),
    options: {
      table: { type: 'string' },
      dt: { type: 'string' },
      hour: { type: 'string' },
      'include-open-hour': { type: 'boolean', default: false },
      namespace: { type: 'string', default: '' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || !values.table || !values.dt) {
    console.log(usage);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  dayOption('dt', values.dt);
  if (values.hour !== undefined && !/^([01]\d|2[0-3])$/.test(values.hour)) throw new LakestreamError('USAGE', `--hour must be two digits 00-23, got ${JSON.stringify(values.hour)}`);
  const target = compactionTarget(values.table, values.namespace ?? '');
  const started = Date.now();
  const context = createClientContext(loadConfig(), { namespace: values.namespace ?? '', component: 'compaction' });
  const results = await compactDay(context, target, values.dt, { hour: values.hour, includeOpenHour: values['include-open-hour'] }).finally(() => context.close());
  for (const result of results) {
    console.log(
      `${result.dt} hour=${result.hour}: ${result.output ? `${result.inputs} files -> 1 (${formatCount(result.rows)} rows)` : `skipped (${result.skipped}, ${result.inputs} file${result.inputs === 1 ? '' : 's'})`}`,
    );
  }
  const merged = results.filter((r) => r.output);
  console.log(
    `compact: ${target.view} dt=${values.dt}: ${merged.reduce((s, r) => s + r.inputs, 0)} files merged into ${merged.length} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

runCli('compact', main);
