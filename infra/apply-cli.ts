import { arg, defineCommand, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { asKafkaUser, createAdmin, KAFKA_ADMIN_USER } from '../core/kafka.ts';
import { probeKafka } from '../core/kafka-probe.ts';
import { createRegistry } from '../core/registry.ts';
import { catalog } from '../platform/catalog.ts';
import { createClientContext } from '../platform/context.ts';
import { loadTableState } from '../core/iceberg/table.ts';
import { ensureLakeTable } from '../platform/lake.ts';
import { applyAccess } from './access.ts';
import { applyInfra } from './apply.ts';
import { topicsFor } from './topics.ts';

const command = defineCommand({
  name: 'infra:apply',
  usage: ['pnpm run infra:apply [-- --namespace NS]'],
  description: `Creates the declared topics (infra/topics.ts) that are missing, fixes config drift (retention,
cleanup policy, min.insync.replicas, min.compaction.lag.ms), registers the Avro schemas in
schemas/ under <topic>-value with BACKWARD_TRANSITIVE compatibility, and reports drift it cannot
fix. With KAFKA_CREDENTIALS_DIR set (the local stack sets it), it also creates each job's Kafka
user (SCRAM-SHA-512; a missing password file is made up) and grants it the ACLs its job needs
(platform/access.ts). Creates each lake table's Iceberg table in the REST catalog
(ICEBERG_CATALOG_URL) from its Avro schema.
Safe to run repeatedly. Exits 1 when unfixable drift remains.`,
  options: {
    namespace: option('NS', "a namespaced pipeline's topics, users and tables", arg.text().default('')),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const config = loadConfig();
  // the admin client would retry a refused password or a dead cluster and report only "metadata failed"
  await probeKafka(asKafkaUser(config, KAFKA_ADMIN_USER), { requireAnswer: true });
  const admin = createAdmin(config);
  try {
    const { namespace } = values;
    const actions = await applyInfra(topicsFor(namespace), { admin, registry: createRegistry(config), registryUrl: config.SCHEMA_REGISTRY_URL });
    if (config.KAFKA_CREDENTIALS_DIR) actions.push(...(await applyAccess(catalog(namespace), { admin, connection: config, credentialsDir: config.KAFKA_CREDENTIALS_DIR })));
    else console.log('users and ACLs: skipped (KAFKA_CREDENTIALS_DIR is not set)');
    const names = catalog(namespace);
    const context = createClientContext(config, { namespace, component: 'infra:apply' });
    try {
      for (const table of Object.values(names.tables)) {
        const existed = await loadTableState(context.lakeTables(), table.iceberg);
        const state = existed ?? (await ensureLakeTable(context.lakeTables(), names, table, config.LAKE_BUCKET));
        const id = `${table.iceberg.namespace.join('.')}.${table.iceberg.name}`;
        actions.push({ topic: id, kind: existed ? 'unchanged' : 'created', detail: `Iceberg table, ${state.schema.fields.length} columns, at ${state.loaded.metadata.location}` });
      }
    } finally {
      await context.close();
    }
    for (const action of actions) console.log(`${action.kind.padEnd(10)} ${action.topic.padEnd(26)} ${action.detail}`);
    const drift = actions.filter((action) => action.kind === 'drift');
    if (drift.length) {
      console.error(`infra:apply: ${drift.length} drift(s) need a manual fix`);
      process.exitCode = 1;
    }
  } finally {
    await admin.close();
  }
}

runCli('infra:apply', main);
