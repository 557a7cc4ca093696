import { parseArgs } from 'node:util';
import { cliArgs, helpText, runCli } from '../../core/cli.ts';
import { catalog } from '../../core/catalog.ts';
import { loadConfig } from '../../core/config.ts';
import { createClientContext } from '../../core/context.ts';
import { LakestreamError } from '../../core/errors.ts';
import { asKafkaUser, createAdmin, KAFKA_ADMIN_USER } from '../../core/kafka.ts';
import { probeKafka } from '../../core/kafka-producer.ts';
import { migrateTable } from './migrate.ts';
import { verifyTable, type Finding } from './verify.ts';

const usage = helpText(`Usage: pnpm run lake -- verify|migrate [--namespace NS] [--table VIEW] [--json] [--dry-run]

verify

Checks every lake table (or --table) against its topic: the Kafka offsets the table's current
Iceberg snapshot says it archived, next to each partition's log start and end, and that every
file the snapshot references exists. Reports lag, a table ahead of its topic (truncated or
recreated), a topic id that changed, and offsets that fell below the log start (retention deleted
records before the sink archived them). Exits 1 on any error.

migrate
Imports a lake written before the Iceberg tables (<table>/dt=…/hour=…/*.parquet and the sinks'
state objects) into each table's Iceberg table, once: rewritten with the table's field ids, in
one commit that carries the old sinks' offsets, so the sinks go on where the old ones stopped.
Run it with the lake sinks stopped, before they first run on Iceberg. Old objects are kept.
`);

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: cliArgs(),
    allowPositionals: true,
    options: {
      namespace: { type: 'string', default: '' },
      table: { type: 'string' },
      json: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const command = positionals[0];
  if (values.help || (command !== 'verify' && command !== 'migrate') || positionals.length !== 1) {
    console.log(usage);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const names = catalog(values.namespace ?? '');
  const tables = Object.values(names.tables).filter((table) => !values.table || table.view === values.table);
  if (!tables.length) throw new LakestreamError('USAGE', `--table must be one of ${Object.values(names.tables).map((t) => t.view).join(', ')}, got ${JSON.stringify(values.table)}`);
  const config = loadConfig();
  if (command === 'migrate') {
    const context = createClientContext(config, { namespace: values.namespace ?? '', component: 'lake' });
    try {
      for (const table of tables) {
        const result = await migrateTable(config, context.lakeTables(), names, table, { dryRun: values['dry-run'] });
        if (values.json) console.log(JSON.stringify(result));
        else console.log(`${result.table}: ${values['dry-run'] && result.status === 'migrated' ? 'would migrate' : result.status}${result.files ? `, ${result.files} hour file(s), ${result.rows} row(s), offsets ${JSON.stringify(result.offsets)}` : ''}`);
      }
    } finally {
      await context.close();
    }
    return;
  }
  await probeKafka(asKafkaUser(config, KAFKA_ADMIN_USER), { requireAnswer: true });
  const admin = createAdmin(config, 'lakestream-lake-verify');
  const context = createClientContext(config, { namespace: values.namespace ?? '', component: 'lake' });
  const findings: Finding[] = [];
  try {
    for (const table of tables) findings.push(...(await verifyTable(context.lakeTables(), admin, table)));
  } finally {
    await admin.close();
    await context.close();
  }
  const errors = findings.filter((f) => f.level === 'error');
  if (values.json) console.log(JSON.stringify({ errors: errors.length, findings }));
  else {
    for (const f of findings) console.log(`${f.level === 'error' ? 'ERROR' : 'ok   '} ${f.table}${f.partition !== undefined ? ` [${f.partition}]` : ''}: ${f.message}`);
    console.log(`lake verify: ${tables.length} table(s), ${errors.length} error(s)`);
  }
  if (errors.length) process.exitCode = 1;
}

runCli('lake', main);
