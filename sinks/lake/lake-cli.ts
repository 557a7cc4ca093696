import { arg, defineCommand, flag, option, runCli } from '../../core/cli.ts';
import { catalog } from '../../platform/catalog.ts';
import { loadConfig } from '../../core/config.ts';
import { createClientContext } from '../../platform/context.ts';
import { asKafkaUser, createAdmin, KAFKA_ADMIN_USER } from '../../core/kafka.ts';
import { probeKafka } from '../../core/kafka-probe.ts';
import { migrateTable } from './migrate.ts';
import { verifyTable, type Finding } from './verify.ts';

const views = Object.values(catalog().tables).map((table) => table.view);

const command = defineCommand({
  name: 'lake',
  usage: ['pnpm run lake -- verify|migrate [--namespace NS] [--table VIEW] [--json] [--dry-run]'],
  description: `verify
  Checks every lake table (or --table) against its topic: the Kafka offsets the table's current
  Iceberg snapshot says it archived, next to each partition's log start and end, and that every
  file the snapshot references exists. Reports lag, a table ahead of its topic (truncated or
  recreated), a topic id that changed, and offsets that fell below the log start (retention deleted
  records before the sink archived them). Exits 1 on any error.

migrate
  Imports a lake written before the Iceberg tables (<table>/dt=…/hour=…/*.parquet and the sinks'
  state objects) into each table's Iceberg table, once: rewritten with the table's field ids, in
  one commit that carries the old sinks' offsets, so the sinks go on where the old ones stopped.
  Run it with the lake sinks stopped, before they first run on Iceberg. Old objects are kept.`,
  positionals: true,
  options: {
    namespace: option('NS', "a namespaced pipeline's tables", arg.text().default('')),
    table: option('VIEW', 'only this table', arg.oneOf(views).optional()),
    json: flag('print the findings as JSON'),
    'dry-run': flag('migrate: say what would be imported, write nothing'),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  const subcommand = positionals[0];
  if ((subcommand !== 'verify' && subcommand !== 'migrate') || positionals.length !== 1) return command.refuse('expected verify or migrate');
  const names = catalog(values.namespace);
  const tables = Object.values(names.tables).filter((table) => !values.table || table.view === values.table);
  const config = loadConfig();
  if (subcommand === 'migrate') {
    const context = createClientContext(config, { namespace: values.namespace, component: 'lake' });
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
  const context = createClientContext(config, { namespace: values.namespace, component: 'lake' });
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
