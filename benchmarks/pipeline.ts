import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { arg, defineCommand, flag, option } from '../core/cli.ts';
import { packageScriptCommand } from '../scripts/pipeline-process.ts';
import { loadConfig, repoRoot, type Config } from '../core/config.ts';
import { runConsumerPerformance } from './kafka-tools.ts';
import kafkaJavascript, { type Message } from '@confluentinc/kafka-javascript';
import { createAdmin, librdkafkaBase } from '../core/kafka.ts';
import { consumerFetchSettings, profileSettings } from '../core/profile.ts';
import { createRegistry, deleteSubject } from '../core/registry.ts';
import { sleep } from '../core/retry.ts';
import { formatCount } from '../core/stats.ts';
import { applyInfra } from '../infra/apply.ts';
import { topicsFor } from '../infra/topics.ts';
import { catalog } from '../platform/catalog.ts';
import { LAKE_SINK_BATCH_SIZE } from '../sinks/lake/lake-sink.ts';

/**
 * Throughput and memory of the transactions pipeline's stages on the local stack, each in its own
 * process, beside a raw consume of the same topic with the same client: producer records/s and
 * latency, backup sink and features job records/s, and each one's peak RSS.
 */
export interface PipelineBench {
  records: number;
  producer: { recordsPerSecond: number; peakRssMb: number; summary: string };
  /** The faster of two raw consumes, at the lake sink's batch size and at the profile's. */
  raw: { recordsPerSecond: number; seconds: number; batchSize: number };
  consumerPerformance: { recordsPerSecond: number };
  backup: { recordsPerSecond: number; seconds: number; peakRssMb: number };
  features: { recordsPerSecond: number; seconds: number; peakRssMb: number };
}

export async function benchPipeline(config: Config, N: number, keep = false): Promise<PipelineBench> {
const namespace = `bench-${Date.now().toString(36)}`;
const names = catalog(namespace);
const admin = createAdmin(config, 'lakestream-bench');
const specs = topicsFor(namespace);
await applyInfra(specs, { admin, registry: createRegistry(config), registryUrl: config.SCHEMA_REGISTRY_URL });

async function caughtUp(group: string, topic: string, end: Map<number, bigint>): Promise<boolean> {
  const [offsets] = await admin.listConsumerGroupOffsets({ groups: [group] });
  const committed = new Map((offsets?.topics.find((t) => t.name === topic)?.partitions ?? []).map((p) => [p.partitionIndex, p.committedOffset]));
  return [...end].every(([partition, offset]) => (committed.get(partition) ?? -1n) >= offset);
}

/** Runs one job in its own process until its group has committed the whole topic. */
async function runJob(job: string, group: string, topic: string, end: Map<number, bigint>): Promise<{ recordsPerSecond: number; seconds: number; peakRssMb: number }> {
  // exactly as `pnpm run job` runs it (heap cap, allocator arenas)
  const command = packageScriptCommand('job');
  const child = spawn(process.execPath, [...command.args, job, '--namespace', namespace, '--flush-interval-ms', '1000'], {
    cwd: repoRoot,
    env: { ...process.env, ...command.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  let startedAt = 0;
  child.stderr.on('data', (chunk: Buffer) => {
    log += chunk.toString();
    // from the first record, as the raw consume: group joins and restores are not throughput
    if (!startedAt && log.includes('"first records"')) startedAt = performance.now();
  });
  while (!startedAt || !(await caughtUp(group, topic, end))) {
    if (child.exitCode !== null) throw new Error(`${job} exited early:\n${log.slice(-3000)}`);
    await sleep(100);
  }
  const seconds = (performance.now() - startedAt) / 1000;
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  // the job's last word: its peak over the whole run
  const peak = [...log.matchAll(/"peakRssMb":(\d+)/g)].at(-1);
  return { recordsPerSecond: N / seconds, seconds, peakRssMb: Number(peak?.[1] ?? 0) };
}

/**
 * The jobs' consumer (librdkafka's callback API with the profile's fetch settings, the batch
 * size of the runtime) reading the same topic and doing nothing else: the ceiling for any job.
 * Timed from the first record, as the jobs are. Also returns, per partition, the offset after its
 * last record: the producer is transactional, so the log's end lies one commit marker further and a
 * job that has read everything commits these offsets, not the end offsets.
 */
async function rawConsume(topic: string, batchSize: number): Promise<{ recordsPerSecond: number; seconds: number; batchSize: number; afterLastRecord: Map<number, bigint> }> {
  const profile = profileSettings(config.LAKESTREAM_PROFILE);
  const consumer = new kafkaJavascript.KafkaConsumer(
    {
      ...librdkafkaBase(config),
      'group.id': `${namespace}-raw-${Math.random().toString(36).slice(2)}`,
      'enable.auto.commit': false,
      ...consumerFetchSettings(profile),
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 15_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.setDefaultConsumeTimeout(profile.pollTimeoutMs);
  (consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
  consumer.subscribe([topic]);
  let seen = 0;
  let startedAt = 0;
  const afterLastRecord = new Map<number, bigint>();
  while (seen < N) {
    const messages = await new Promise<Message[]>((resolve, reject) => consumer.consume(batchSize, (err, m) => (err ? reject(err) : resolve(m))));
    if (messages.length) startedAt ||= performance.now();
    seen += messages.length;
    for (const message of messages) afterLastRecord.set(message.partition, BigInt(message.offset) + 1n);
  }
  const seconds = (performance.now() - startedAt) / 1000;
  await new Promise((resolve) => consumer.disconnect(resolve));
  return { recordsPerSecond: N / seconds, seconds, batchSize, afterLastRecord };
}

console.error(`bench: pipeline, ${formatCount(N)} transactions in namespace ${namespace}`);
const produced = spawnSync(
  'pnpm',
  ['--silent', 'run', 'producer', '--', 'transactions', '--topic', names.topic.transactions, '--count', String(N), '--users', '10000', '--days', '0', '--seed', '1'],
  { cwd: repoRoot, encoding: 'utf8' },
);
if (produced.status !== 0) throw new Error(produced.stderr);
const summary = produced.stdout.trim();
const producerRate = Number(/([\d,]+) records\/s/.exec(summary)![1]!.replaceAll(',', ''));
const producerRss = Number(/peak RSS (\d+) MB/.exec(summary)![1]);

// at the lake sink's batch size and at the profile's (the features job's): the faster is the ceiling of both
const raws = [await rawConsume(names.topic.transactions, LAKE_SINK_BATCH_SIZE), await rawConsume(names.topic.transactions, profileSettings(config.LAKESTREAM_PROFILE).maxBatchSize)];
const { afterLastRecord, ...raw } = raws.reduce((best, run) => (run.recordsPerSecond > best.recordsPerSecond ? run : best));
const backup = await runJob('transactions-job-backup', names.group('transactions-job-backup'), names.topic.transactions, afterLastRecord);
const features = await runJob('transactions-ml-features-job', names.group('transactions-ml-features-job'), names.topic.transactions, afterLastRecord);

const consumerPerformance = await runConsumerPerformance(config, names.topic.transactions, N);
if (!keep) {
  await admin.deleteTopics({ topics: specs.map((spec) => spec.name) });
  for (const spec of specs) await deleteSubject(config.SCHEMA_REGISTRY_URL, `${spec.name}-value`);
}
await admin.close();
return { records: N, producer: { recordsPerSecond: producerRate, peakRssMb: producerRss, summary }, raw, consumerPerformance, backup, features };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = defineCommand({
    name: 'bench:pipeline',
    usage: ['node --import tsx benchmarks/pipeline.ts [-- options]'],
    description: 'The pipeline section of pnpm run bench alone: raw consume, the lake sink and the features job over the same records; prints JSON.',
    options: {
      records: option('N', 'records produced for the run', arg.positiveInteger().default(200_000)),
      keep: flag("keep the run's namespace (topics, tables) for a look afterwards"),
    },
  }).parse();
  if (!args) process.exit(0);
  const result = await benchPipeline(loadConfig(), args.values.records, args.values.keep);
  console.log(JSON.stringify(result, null, 2));
}
