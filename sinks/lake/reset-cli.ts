import { arg, defineCommand, flag, option, runCli } from '../../core/cli.ts';
import { catalog } from '../../platform/catalog.ts';
import { loadConfig } from '../../core/config.ts';
import { createClientContext } from '../../platform/context.ts';
import { errorMessage, LakestreamError } from '../../core/errors.ts';
import { asKafkaUser, createAdmin, KAFKA_ADMIN_USER } from '../../core/kafka.ts';
import { probeKafka } from '../../core/kafka-probe.ts';
import { commitSnapshot, loadTableState } from '../../core/iceberg/table.ts';

const command = defineCommand({
  name: 'sink:reset',
  usage: ['pnpm run sink:reset -- <lake sink job> [--namespace NS] [--yes]'],
  description: `After a topic was deleted and recreated on purpose, makes its lake sink archive the new topic
from its start. The sink stops by itself when it notices (TOPIC_RESET): its state in the lake
still names the old topic's offsets, and reading on would skip the new records up to them.

This commits an empty snapshot to the sink's Iceberg table that clears the Kafka offsets its
snapshots carry (the earlier snapshots keep them, for the record) and deletes the sink's
consumer-group offsets. Rows already in the table stay: they are the old topic's records.
Refuses while a member of the group is still running.`,
  positionals: true,
  options: {
    namespace: option('NS', "a namespaced pipeline's sink", arg.text().default('')),
    yes: flag('do it; without it the command only prints what it would do'),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  if (positionals.length !== 1) return command.refuse('name one lake sink job');
  const names = catalog(values.namespace ?? '');
  const sinks = Object.values(names.tables);
  const table = sinks.find((t) => t.sink === positionals[0] || t.group === positionals[0]);
  if (!table) throw new LakestreamError('USAGE', `${positionals[0]} is not a lake sink; lake sinks: ${sinks.map((t) => t.sink).join(', ')}`);

  const config = loadConfig();
  // the admin client would retry a refused password or a dead cluster and report only "metadata failed"
  await probeKafka(asKafkaUser(config, KAFKA_ADMIN_USER), { requireAnswer: true });
  const admin = createAdmin(config);
  const context = createClientContext(config, { namespace: values.namespace ?? '', component: 'sink:reset' });
  try {
    const groups = await admin.describeGroups({ groups: [table.group] }).catch((error: unknown) => {
      throw new LakestreamError('KAFKA_ERROR', `could not describe consumer group ${table.group}: ${errorMessage(error)}`, { cause: error });
    });
    const members = groups.get(table.group)?.members.size ?? 0;
    if (members > 0) throw new LakestreamError('USAGE', `${table.sink} still runs (${members} member${members > 1 ? 's' : ''} in group ${table.group}): stop it first`);

    const lake = context.lakeTables();
    const state = await loadTableState(lake, table.iceberg);
    const offsets = state?.offsets;
    console.log(
      `${table.sink}: table ${table.iceberg.namespace.join('.')}.${table.iceberg.name} holds offsets of ${Object.keys(offsets?.next ?? {}).length} partition(s)` +
        `${offsets?.topicId ? ` of topic id ${offsets.topicId}` : ''}; clear them and delete the offsets of group ${table.group}`,
    );
    if (!values.yes) {
      console.log('dry run: add --yes to do it');
      return;
    }
    if (state && offsets) {
      await commitSnapshot(lake, state, { operation: 'append', added: [], offsets: { topic: table.topic, topicId: '', next: {} }, writer: 'sink:reset' });
    }
    if (groups.get(table.group)) {
      await admin.deleteGroups({ groups: [table.group] }).catch((error: unknown) => {
        // a group with no committed offsets left (deleted with the topic) is already what we want
        if (!/GROUP_ID_NOT_FOUND|does not exist/i.test(errorMessage(error))) throw error;
      });
    }
    console.log(`${table.sink}: reset; it archives ${table.topic} from its start when it runs again`);
  } finally {
    await admin.close();
    await context.close();
  }
}

runCli('sink:reset', main);
