import { arg, defineCommand, expect, option, runCli } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { formatChaosTable } from './report.ts';
import { runScenario, type ChaosRow } from './harness.ts';
import { recreateScenario, runRecreateExperiment } from './recreate.ts';
import { replicationExperiment, scenarios } from './scenarios.ts';

const replicationList = expect('RF/minISR pairs with 1 <= minISR <= RF <= 3, e.g. 3/2', (raw) => {
  const settings = raw.split(',').map((setting) => /^(\d)\/(\d)$/.exec(setting.trim()));
  if (!settings.every((match) => match && Number(match[1]) <= 3 && Number(match[2]) >= 1 && Number(match[2]) <= Number(match[1]))) return undefined;
  return settings.map((match) => ({ factor: Number(match![1]), minInsync: Number(match![2]) }));
});

const command = defineCommand({
  name: 'chaos',
  usage: ['pnpm run chaos [-- --only ID,…] [--rate N]', 'pnpm run chaos -- --replication 1/1,3/2,3/3'],
  description: `Breaks the local stack while the transactions pipeline runs, heals it, waits for the pipeline to
drain, and counts every record: acknowledged by Kafka, in the lake, duplicated, lost, counted in
Redis. Prints one row per scenario and exits non-zero if an expectation was missed. Needs the
3-broker local stack (\`pnpm run stack:up\`); each scenario takes about a minute and runs on its
own namespace, removed afterwards.`,
  options: {
    only: option('IDS', 'comma-separated scenario ids (default: all)', arg.nonEmpty().optional()),
    rate: option('N', 'transactions per second during each scenario', arg.integerAtLeast(50).default(300)),
    replication: option('LIST', 'instead of the scenarios: kill one broker under each replication setting (RF/min ISR) of the pipeline\'s topics, and report what stayed available and what was lost', replicationList.default([])),
  },
  footer: () => `Scenarios:\n${[...scenarios, recreateScenario].map((s) => `  ${s.id.padEnd(12)} ${s.name}`).join('\n')}`,
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const { replication: settings, rate } = values;
  const allIds = [...scenarios.map((s) => s.id), recreateScenario.id];
  const ids = values.only ? values.only.split(',').map((id) => id.trim()) : allIds;
  const unknown = ids.filter((id) => !allIds.includes(id));
  if (unknown.length) throw new LakestreamError('USAGE', `unknown scenario ${unknown.join(', ')}; scenarios: ${allIds.join(', ')}`);
  const runs = settings.length
    ? settings.map((replication) => ({ scenario: replicationExperiment(replication.factor, replication.minInsync), replication }))
    : ids.filter((id) => id !== recreateScenario.id).map((id) => ({ scenario: scenarios.find((s) => s.id === id)!, replication: undefined }));
  const config = loadConfig();
  if (config.KAFKA_BROKERS.length < 3) throw new LakestreamError('USAGE', `chaos needs the 3-broker stack; KAFKA_BROKERS lists ${config.KAFKA_BROKERS.length}`);
  const rows: ChaosRow[] = [];
  for (const { scenario, replication } of runs) {
    console.error(`chaos: ${scenario.name}`);
    rows.push(await runScenario(config, scenario, { rate, replication, log: (message) => console.error(`chaos: ${message}`) }));
    console.error(`chaos: ${rows.at(-1)!.met ? 'met' : `MISSED: ${rows.at(-1)!.missed.join('; ')}`}`);
  }
  if (!settings.length && ids.includes(recreateScenario.id)) {
    console.error(`chaos: ${recreateScenario.name}`);
    rows.push(await runRecreateExperiment(config, { log: (message) => console.error(`chaos: ${message}`) }));
    console.error(`chaos: ${rows.at(-1)!.met ? 'met' : `MISSED: ${rows.at(-1)!.missed.join('; ')}`}`);
  }
  console.log(formatChaosTable(rows));
  if (rows.some((row) => !row.met)) process.exitCode = 1;
}

runCli('chaos', main);
