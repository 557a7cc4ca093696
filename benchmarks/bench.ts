import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { avroCodec } from '../core/avro.ts';
import { cliArgs } from '../core/cli.ts';
import { loadConfig, repoRoot } from '../core/config.ts';
import { createAdmin } from '../core/kafka.ts';
import { createRedis } from '../core/redis.ts';
import { createRegistry, deleteSubject } from '../core/registry.ts';
import { sleep } from '../core/retry.ts';
import { LatencyRecorder, formatCount } from '../core/stats.ts';
import { applyInfra } from '../infra/apply.ts';
import { topicsFor } from '../infra/topics.ts';
import { createTransactionGenerator } from '../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../ingest/transactions/producer.ts';
import { catalog } from '../core/catalog.ts';
import { getUserFeatures, writeUserFeatures } from '../sinks/redis/online-store.ts';
import { benchBackfill } from './backfill.ts';
import { runProducerPerformance } from './kafka-tools.ts';
import { runLoadtest, type LoadtestResult } from './loadtest.ts';
import { benchPipeline } from './pipeline.ts';

/**
 * `pnpm run bench`: every hot path beside its reference tool on the same stack in the same run,
 * several samples each (median, with min–max spread), ending in one markdown table (also written
 * as JSON to benchmarks/results/). Targets are printed and marked, never asserted.
 */
const { values } = parseArgs({ args: cliArgs(), options: { quick: { type: 'boolean', default: false } } });
const quick = values.quick ?? false;
const samples = quick ? 1 : 3;
const config = loadConfig();
const admin = createAdmin(config, 'lakestream-bench');
const namespace = `bench-${Date.now().toString(36)}`;
const names = catalog(namespace);
const specs = topicsFor(namespace);
const registry = createRegistry(config);
await applyInfra(specs, { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
const perfTopic = `${namespace}.perf`;
await admin.createTopics({
  topics: [perfTopic],
  partitions: 6,
  replicas: Math.min(3, config.KAFKA_BROKERS.length),
  configs: [
    { name: 'min.insync.replicas', value: config.KAFKA_BROKERS.length >= 3 ? '2' : '1' },
    { name: 'retention.ms', value: '600000' },
  ],
});

interface Row {
  group: string;
  name: string;
  value: string;
  spread: string;
  reference: string;
  ratio: string;
  target: string;
  met: string;
}
const rows: Row[] = [];
const results: Record<string, unknown> = { quick, samples, brokers: config.KAFKA_BROKERS.length };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => (xs.length > 1 ? `${formatCount(Math.min(...xs))}–${formatCount(Math.max(...xs))}` : '');
const log = (message: string) => console.error(`bench: ${message}`);

async function sampled<T>(label: string, run: () => Promise<T> | T): Promise<T[]> {
  log(`${label}: warm-up`);
  await run();
  const out: T[] = [];
  for (let i = 0; i < samples; i++) {
    log(`${label}: sample ${i + 1}/${samples}`);
    out.push(await run());
  }
  return out;
}

// 1. Producer: our client and our transactions path vs Kafka's ProducerPerformance.
const codec = await avroCodec(registry, await registry.getLatestSchemaId(`${names.topic.transactions}-value`));
const gen = createTransactionGenerator({ users: 10_000, seed: 1, spreadDays: 0 });
const avroRecords = Array.from({ length: 10_000 }, gen);
const avroPayloads = avroRecords.map((record) => codec.encode(record));
const avroKeys = avroRecords.map((record) => String(record.user_id));
const avroSize = Math.round(avroPayloads.reduce((sum, p) => sum + p.length, 0) / avroPayloads.length);
const producerCount = { small: quick ? 100_000 : 300_000, large: quick ? 30_000 : 100_000 };
for (const size of [avroSize, 1024]) {
  const numRecords = size === 1024 ? producerCount.large : producerCount.small;
  for (const acks of [0, 1, -1]) {
    const label = `${size} B, acks=${acks === -1 ? 'all' : acks}`;
    const ours = await sampled(`producer ours ${label}`, () =>
      runLoadtest(config, {
        topic: perfTopic,
        numRecords,
        recordSize: size,
        acks,
        throughput: -1,
        quiet: true,
        ...(size === avroSize ? { payloads: avroPayloads, keys: avroKeys } : {}),
      }),
    );
    const theirs = await sampled(`producer ProducerPerformance ${label}`, () => runProducerPerformance(config, { topic: perfTopic, numRecords, recordSize: size, acks }));
    const o = median(ours.map((r) => r.recordsPerSecond));
    const th = median(theirs.map((r) => r.recordsPerSecond));
    const pick = (rs: LoadtestResult[]) => rs.find((r) => r.recordsPerSecond === median(rs.map((x) => x.recordsPerSecond)))!;
    const ratio = o / th;
    const target = acks === -1 ? (size === 1024 ? 0.8 : 0.5) : undefined;
    const lat = (r: LoadtestResult) => `avg ${r.avg.toFixed(0)} / p50 ${r.p50.toFixed(0)} / p95 ${r.p95.toFixed(0)} / p99 ${r.p99.toFixed(0)} / max ${r.max.toFixed(0)} ms`;
    rows.push({
      group: 'producer',
      name: `our client (pre-encoded), ${label}`,
      value: `${formatCount(o)} rec/s, ${pick(ours).mbPerSecond.toFixed(1)} MB/s; ${lat(pick(ours))}`,
      spread: spread(ours.map((r) => r.recordsPerSecond)),
      reference: `ProducerPerformance ${formatCount(th)} rec/s, ${pick(theirs).mbPerSecond.toFixed(1)} MB/s; ${lat(pick(theirs))}`,
      ratio: ratio.toFixed(2),
      target: target ? `≥ ${target}×` : '',
      met: target ? (ratio >= target ? 'met' : 'missed') : '',
    });
    results[`producer ${label}`] = { ours, theirs };
  }
}
const pathSamples = await sampled('producer transactions path (zod + Avro + send)', async () => {
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  const records = Array.from({ length: producerCount.small }, gen);
  const started = performance.now();
  const inFlight: Array<Promise<unknown>> = [];
  for (let i = 0; i < records.length; i += 5_000) inFlight.push(producer.send(records.slice(i, i + 5_000)));
  await Promise.all(inFlight);
  const rate = records.length / ((performance.now() - started) / 1000);
  await producer.close();
  return rate;
});
const baseline = results[`producer ${avroSize} B, acks=all`] as { theirs: LoadtestResult[] };
const pathRate = median(pathSamples);
rows.push({
  group: 'producer',
  name: `transactions path (zod + Avro + KafkaJS-API send), ${avroSize} B, acks=all`,
  value: `${formatCount(pathRate)} rec/s`,
  spread: spread(pathSamples),
  reference: `ProducerPerformance ${formatCount(median(baseline.theirs.map((r) => r.recordsPerSecond)))} rec/s`,
  ratio: (pathRate / median(baseline.theirs.map((r) => r.recordsPerSecond))).toFixed(2),
  target: '≥ 0.5×',
  met: pathRate / median(baseline.theirs.map((r) => r.recordsPerSecond)) >= 0.5 ? 'met' : 'missed',
});

// 2 + 3. Lake sink and features job vs raw consume (and ConsumerPerformance).
const pipeline = await benchPipeline(config, quick ? 100_000 : 300_000);
results.pipeline = pipeline;
const sinkRatio = pipeline.backup.recordsPerSecond / pipeline.raw.recordsPerSecond;
rows.push({
  group: 'consumer',
  name: `transactions-job-backup → Parquet on MinIO (peak RSS ${pipeline.backup.peakRssMb} MB)`,
  value: `${formatCount(pipeline.backup.recordsPerSecond)} rec/s`,
  spread: '',
  reference: `raw consume ${formatCount(pipeline.raw.recordsPerSecond)} rec/s; ConsumerPerformance ${formatCount(pipeline.consumerPerformance.recordsPerSecond)} rec/s`,
  ratio: sinkRatio.toFixed(2),
  target: '≥ 0.7×, RSS ≤ 512 MB',
  met: sinkRatio >= 0.7 && pipeline.backup.peakRssMb <= 512 ? 'met' : 'missed',
});
const featuresRatio = pipeline.features.recordsPerSecond / pipeline.raw.recordsPerSecond;
rows.push({
  group: 'features',
  name: `transactions-ml-features-job, exactly-once (peak RSS ${pipeline.features.peakRssMb} MB)`,
  value: `${formatCount(pipeline.features.recordsPerSecond)} rec/s`,
  spread: '',
  reference: `raw consume ${formatCount(pipeline.raw.recordsPerSecond)} rec/s`,
  ratio: featuresRatio.toFixed(2),
  target: '≥ 0.5×',
  met: featuresRatio >= 0.5 ? 'met' : 'missed',
});

// 4. Backfill vs DuckDB SQL.
const backfill = await benchBackfill(config, quick ? 2_000_000 : 10_000_000, quick ? 4 : 10);
results.backfill = backfill;
const best = Math.max(backfill.one, backfill.two);
rows.push({
  group: 'backfill',
  name: `backfill of ${formatCount(backfill.rows)} archived rows (best of 1 and 2 workers)`,
  value: `${formatCount(best)} rows/s`,
  spread: `${formatCount(backfill.one)} (1 worker), ${formatCount(backfill.two)} (2)`,
  reference: `DuckDB SQL ${formatCount(backfill.duckdb)} rows/s`,
  ratio: (best / backfill.duckdb).toFixed(2),
  target: '≥ 0.5×',
  met: best / backfill.duckdb >= 0.5 ? 'met' : 'missed',
});

// 5. Redis lookups vs redis-benchmark GET.
const redis = createRedis(config);
const prefix = `${namespace}:feat:user:`;
const seeded = Array.from({ length: 10_000 }, (_, i) => ({ user_id: i, total_transactions_count: i + 1, updated_at: Date.now() }));
for (let i = 0; i < seeded.length; i += 1_000) await writeUserFeatures(redis, seeded.slice(i, i + 1_000), prefix);
const url = new URL(config.REDIS_URL);
for (const batch of [1, 100]) {
  const timings = await sampled(`redis lookup of ${batch}`, async () => {
    const latency = new LatencyRecorder();
    for (let i = 0; i < (quick ? 2_000 : 10_000); i++) {
      const ids = Array.from({ length: batch }, (_, k) => (i * 37 + k * 101) % 12_000);
      const started = performance.now();
      await getUserFeatures(redis, ids, prefix);
      latency.record(performance.now() - started);
    }
    return latency.summary();
  });
  const reference = spawnSync('redis-benchmark', ['-h', url.hostname, '-p', url.port || '6379', '-t', 'get', '-n', '50000', '-c', '1', '--csv'], { encoding: 'utf8' });
  const csv = reference.stdout.trim().split('\n').pop()!.replaceAll('"', '').split(',');
  const refP50 = Number(csv[4]);
  const refP99 = Number(csv[6]);
  const p50 = median(timings.map((s) => s.p50));
  const p99 = median(timings.map((s) => s.p99));
  const ratio = p99 / refP99;
  rows.push({
    group: 'redis',
    name: `getUserFeatures, ${batch} user${batch > 1 ? 's' : ''} per call (10k users, 17% missing)`,
    value: `p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`,
    spread: timings.length > 1 ? `p99 ${Math.min(...timings.map((s) => s.p99)).toFixed(3)}–${Math.max(...timings.map((s) => s.p99)).toFixed(3)}` : '',
    reference: `redis-benchmark GET p50 ${refP50} ms, p99 ${refP99} ms`,
    ratio: ratio.toFixed(2),
    target: batch === 1 ? '≤ 2× (p99)' : '',
    met: batch === 1 ? (ratio <= 2 ? 'met' : 'missed') : '',
  });
  results[`redis ${batch}`] = { timings, redisBenchmark: { p50: refP50, p99: refP99 } };
}

// 6. Freshness: produce → count visible in Redis, at a steady 5,000 transactions/s, on topics of
// its own so no earlier backlog is in the way.
const freshNamespace = `${namespace}-fresh`;
const freshNames = catalog(freshNamespace);
const freshSpecs = topicsFor(freshNamespace);
await applyInfra(freshSpecs, { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
log('freshness: starting the features job and the Redis sink');
const jobs = spawn(
  process.execPath,
  ['--import', 'tsx', join(repoRoot, 'pipeline', 'cli.ts'), 'transactions-ml-features-job', 'user-transaction-counts-redis-sink', '--namespace', freshNamespace],
  { cwd: repoRoot, stdio: ['ignore', 'ignore', 'ignore'] },
);
const producer = await createTransactionsProducer(config, { topic: freshNames.topic.transactions, lingerMs: 1 });
const fresh = new LatencyRecorder();
const pending = new Map<number, number>();
const rate = 5_000;
const seconds = quick ? 15 : 30;
let probeUser = 50_000_000;
const warmUntil = performance.now() + 5_000;
let streaming = true;
const watcher = (async () => {
  let deadline = Number.POSITIVE_INFINITY;
  while (streaming || (pending.size && performance.now() < deadline)) {
    if (!streaming && deadline === Number.POSITIVE_INFINITY) deadline = performance.now() + 20_000;
    const users = [...pending.keys()];
    if (users.length) {
      const found = await getUserFeatures(redis, users, freshNames.features.userTransactionCounts.redisPrefix);
      const now = performance.now();
      found.forEach((feature, i) => {
        if (!feature) return;
        const sentAt = pending.get(users[i]!)!;
        pending.delete(users[i]!);
        // the first seconds include consumer group joins and state restores
        if (sentAt >= warmUntil) fresh.record(now - sentAt);
      });
    }
    await sleep(2);
  }
})();
const streamStarted = performance.now();
for (let tick = 0; performance.now() < streamStarted + (seconds + 5) * 1000; tick++) {
  const due = streamStarted + tick * 20;
  if (due > performance.now()) await sleep(due - performance.now());
  const batch = Array.from({ length: rate / 50 - 1 }, gen);
  const probe = { ...gen(), user_id: probeUser++ };
  const sentAt = performance.now();
  void producer.send([...batch, probe]).then(() => pending.set(probe.user_id, sentAt));
}
streaming = false;
await watcher;
await producer.close();
jobs.kill('SIGTERM');
const f = fresh.summary();
rows.push({
  group: 'freshness',
  name: `produce → count visible in Redis at ${formatCount(rate)} tx/s (${fresh.count} probes)`,
  value: `p50 ${f.p50.toFixed(0)} ms, p99 ${f.p99.toFixed(0)} ms`,
  spread: `max ${f.max.toFixed(0)} ms`,
  reference: '',
  ratio: '',
  target: 'p50 < 100 ms, p99 < 500 ms',
  met: f.p50 < 100 && f.p99 < 500 ? 'met' : 'missed',
});
results.freshness = f;

console.log(`\n## lakestream benchmarks (${quick ? 'quick, 1 sample' : `${samples} samples, median`}; ${config.KAFKA_BROKERS.length} brokers)\n`);
console.log('| path | ours | spread | reference, same stack, same run | ours / ref | target | |');
console.log('|---|---|---|---|---:|---|---|');
for (const row of rows) console.log(`| ${row.name} | ${row.value} | ${row.spread} | ${row.reference} | ${row.ratio} | ${row.target} | ${row.met} |`);
const dir = join(repoRoot, 'benchmarks', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `bench-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(file, JSON.stringify({ rows, results }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
console.log(`\nresults: ${file}`);

await redis.quit();
await admin.deleteTopics({ topics: [...specs, ...freshSpecs].map((spec) => spec.name).concat(perfTopic) });
for (const spec of [...specs, ...freshSpecs]) await deleteSubject(config.SCHEMA_REGISTRY_URL, `${spec.name}-value`);
await admin.close();
process.exit(0);
