import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { catalog } from '../core/catalog.ts';
import { openLake } from '../core/lake.ts';

const usage = helpText(`Usage: pnpm run sql -- "SELECT …" [options]
       pnpm run sql -- -f sql/<file>.sql [options]

Runs DuckDB SQL over the lake in S3. Views: ${Object.values(catalog().tables).map((t) => t.view).join(', ')}
(Hive partition columns dt and hour included; all schema versions read together).

Options:
  -f, --file F          run the statements of a .sql file
  --format F            table (default), csv or json
  --set NAME=VALUE      set a DuckDB variable read with getvariable('NAME'), e.g. --set as_of=1763683200000
  --namespace NS        read the tables of a namespaced pipeline
  -h, --help
`);

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
  const { values, positionals } = parseArgs({
    args: cliArgs(),
    allowPositionals: true,
    options: {
      file: { type: 'string', short: 'f' },
      format: { type: 'string', default: 'table' },
      set: { type: 'string', multiple: true, default: [] },
      namespace: { type: 'string', default: '' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.file && !existsSync(values.file)) throw new LakestreamError('USAGE', `--file: no such file ${values.file}`);
  const sql = values.file ? readFileSync(values.file, 'utf8') : positionals.join(' ');
  if (values.help || !sql.trim()) {
    console.log(usage);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const format = values.format ?? 'table';
  if (!['table', 'csv', 'json'].includes(format)) throw new LakestreamError('USAGE', `--format must be table, csv or json, got ${format}`);

  const lake = await openLake(loadConfig(), values.namespace);
  try {
    for (const assignment of values.set ?? []) {
      const at = assignment.indexOf('=');
      if (at <= 0) throw new LakestreamError('USAGE', `--set expects NAME=VALUE, got ${assignment}`);
      const name = assignment.slice(0, at);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new LakestreamError('USAGE', `--set: invalid variable name ${name}`);
      await lake.connection.run(`SET VARIABLE ${name} = '${assignment.slice(at + 1).replaceAll("'", "''")}'`);
    }
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
