import { existsSync, readFileSync } from 'node:fs';
import { arg, defineCommand, expect, option, repeated, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { catalog } from '../platform/catalog.ts';
import { openLake, validAsOf } from '../platform/lake.ts';

const variable = expect('NAME=VALUE, NAME a DuckDB variable name', (raw) => {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(raw);
  return match ? { name: match[1]!, value: match[2]! } : undefined;
});

const asOfArg = expect('a time with its zone (2026-12-03T15:00:00Z, 2026-12-03T16:00:00+01:00) or a Nessie commit id', (raw) => (validAsOf(raw) ? raw : undefined));

const command = defineCommand({
  name: 'sql',
  usage: ['pnpm run sql -- "SELECT …" [options]', 'pnpm run sql -- -f sql/<file>.sql [options]'],
  description: `Runs DuckDB SQL over the lake in S3. Views: ${Object.values(catalog().tables).map((t) => t.view).join(', ')}
(Hive partition columns dt and hour included; all schema versions read together).`,
  positionals: true,
  options: {
    file: option('F', 'run the statements of a .sql file', arg.nonEmpty().optional(), { short: 'f' }),
    format: option('F', 'how rows are printed', arg.oneOf(['table', 'csv', 'json'] as const).default('table')),
    set: repeated('NAME=VALUE', "set a DuckDB variable read with getvariable('NAME'), e.g. --set as_of=1763683200000", variable),
    namespace: option('NS', 'read the tables of a namespaced pipeline', arg.text().default('')),
    'as-of': option('WHEN', 'time travel: every table as it was at WHEN, a time with its zone (2026-12-03T15:00:00Z) or a Nessie commit id', asOfArg.optional()),
  },
});

type Row = Record<string, unknown>;

function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  return String(value);
}

function printTable(columns: string[], rows: Row[]): void {
  const cells = rows.map((row) => columns.map((column) => text(row[column])));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join(' │ ');
  console.log(line(columns));
  console.log(widths.map((w) => '─'.repeat(w)).join('─┼─'));
  for (const values of cells) console.log(line(values));
  console.log(`(${rows.length} row${rows.length === 1 ? '' : 's'})`);
}

function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  if (values.file && !existsSync(values.file)) throw new LakestreamError('USAGE', `--file: no such file ${values.file}`);
  const sql = values.file ? readFileSync(values.file, 'utf8') : positionals.join(' ');
  if (!sql.trim()) return command.refuse('give SQL text or -f FILE');
  const { format } = values;

  const lake = await openLake(loadConfig(), values.namespace, { asOf: values['as-of'] });
  try {
    for (const { name, value } of values.set) await lake.connection.run(`SET VARIABLE ${name} = '${value.replaceAll("'", "''")}'`);
    const reader = await lake.connection.runAndReadAll(sql);
    const columns = reader.columnNames();
    const rows = reader.getRowObjectsJson() as Row[];
    if (format === 'json') console.log(JSON.stringify(rows, null, 2));
    else if (format === 'csv') {
      console.log(columns.map(csvField).join(','));
      for (const row of rows) console.log(columns.map((column) => csvField(text(row[column]))).join(','));
    } else printTable(columns, rows);
  } finally {
    lake.close();
  }
}

runCli('sql', main);
