import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { avroCodec } from '../core/avro.ts';
import { catalog } from '../platform/catalog.ts';
import { arg, defineCommand, flag, option } from '../core/cli.ts';
import { loadConfig, repoRoot } from '../core/config.ts';
import { createClientContext } from '../platform/context.ts';
import { createAdmin } from '../core/kafka.ts';
import { ensureLakeTable, openLake } from '../platform/lake.ts';
import type { Profile } from '../core/profile.ts';
import { createRedis } from '../core/redis.ts';
import { createObjectStore } from '../core/object-store.ts';
import { createRegistry } from '../core/registry.ts';
import { createS3 } from '../core/s3.ts';
import { sleep } from '../core/retry.ts';
import { LatencyRecorder, formatCount } from '../core/stats.ts';
import { applyInfra } from '../infra/apply.ts';
import { dropNamespace } from '../infra/namespace.ts';
import { topicsFor } from '../infra/topics.ts';
import { createTransactionGenerator } from '../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../ingest/transactions/producer.ts';
import { startJobProcess } from '../scripts/pipeline-process.ts';
import { createLakeSink } from '../sinks/lake/lake-sink.ts';
import { getUserFeatures, readFeatures, writeUserFeatures } from '../features/online-store.ts';
import { startFeatureServer } from '../features/server.ts';
import { createLogger } from '../core/log.ts';
import { runWrk, wrkPostScript, type WrkFigures } from './wrk.ts';
import { createCollector } from '../dashboard/collect.ts';
import { benchBackfill } from './backfill.ts';
import { compactDay, compactionTarget } from '../backfill/compact.ts';
import { liveFiles, loadTableState } from '../core/iceberg/table.ts';
import { runProducerPerformance } from './kafka-tools.ts';
import { runLoadtest, type LoadtestResult } from './loadtest.ts';
import { benchPipeline } from './pipeline.ts';
import { benchScorer } from './scorer.ts';

const SECTIONS = ['producer', 'pipeline', 'backfill', 'redis', 'freshness', 'lake', 'scorer', 'dashboard'] as const;
type Section = (typeof SECTIONS)[number];

const command = defineCommand({
  name: 'bench',
  usage: [`pnpm run bench [-- --quick] [-- --only ${SECTIONS.join(',')}]`],
  description: `Measures every hot path beside its reference tool on the same local stack in the same run, takes
several samples (median, with the spread), and prints one markdown table with the targets marked
met or missed (never asserted). Raw figures go to benchmarks/results/ (git-ignored).`,
  options: {
    quick: flag('one sample each and smaller runs (about 3 minutes instead of 8)'),
    only: option('LIST', `only these sections (comma-separated): ${SECTIONS.join(', ')}`, arg.nonEmpty().optional()),
  },
});

const args = command.parse();
if (!args) process.exit(0);
const { values } = args;
const only = values.only ? values.only.split(',').map((s) => s.trim()) : [...SECTIONS];
const unknownSections = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
if (unknownSections.length) {
  command.refuse(`unknown section ${unknownSections.join(', ')}; sections: ${SECTIONS.join(', ')}`);
  process.exit();
}
const want = (section: Section) => only.includes(section);
const { quick } = values;
const samples = quick ? 1 : 3;
const config = loadConfig();
const admin = createAdmin(config, 'lakestream-bench');
const namespace = `bench-${Date.now().toString(36)}`;
const names = catalog(namespace);
const createdNamespaces = [namespace];
const registry = createRegistry(config);
await applyInfra(topicsFor(namespace), { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
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
  name: string;
  value: string;
  spread: string;
  reference: string;
  ratio: string;
  target: string;
  met: string;
}
const rows: Array<Row & { machine: string }> = [];

/** The machine's CPU time so far, all cores: busy and total. */
const cpuTimes = () => cpus().reduce((sum, cpu) => {
  const { user, nice, sys, irq, idle } = cpu.times;
  return { busy: sum.busy + user + nice + sys + irq, total: sum.total + user + nice + sys + irq + idle };
}, { busy: 0, total: 0 });
let rowWindow = cpuTimes();

/**
 * A row with how loaded the machine was while it was measured (everything since the previous row:
 * its warm-up, samples and reference): the share of all cores busy, and the 1-minute load average
 * at its end, so a noisy run can be told from a slow one.
 */
/**
 * Waits (up to `limitMs`) until the machine's cores are mostly idle over a 2 s window: what the
 * previous row left running (the brokers replicating and cleaning its topics, a job's exit)
 * would otherwise be measured as this row's latency. Returns the busy share it started at.
 */
async function quietMachine(limitMs = 60_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    const before = cpuTimes();
    await sleep(2_000);
    const after = cpuTimes();
    const busy = (after.busy - before.busy) / Math.max(1, after.total - before.total);
    if (busy < 0.35 || performance.now() - started > limitMs) return busy;
  }
}

let lastMachine = '';
function addRow(row: Row): void {
  const now = cpuTimes();
  // rows of one measurement (pushed together) share its window
  if (now.total - rowWindow.total >= 100) {
    const busy = (now.busy - rowWindow.busy) / (now.total - rowWindow.total);
    lastMachine = `CPU ${(busy * 100).toFixed(0)}% of ${cpus().length} cores, load ${loadavg()[0]!.toFixed(1)}`;
    rowWindow = now;
  }
  rows.push({ ...row, machine: lastMachine });
}
const results: Record<string, unknown> = { quick, samples, brokers: config.KAFKA_BROKERS.length, profile: config.LAKESTREAM_PROFILE };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => (xs.length > 1 ? `${formatCount(Math.min(...xs))}–${formatCount(Math.max(...xs))}` : '');
const log = (message: string) => console.error(`bench: ${message}`);
const verdict = (ok: boolean) => (ok ? 'met' : 'missed');

async function sampled<T>(label: string, run: () => Promise<T> | T, count = samples): Promise<T[]> {
  log(`${label}: warm-up`);
  await run();
  const out: T[] = [];
  for (let i = 0; i < count; i++) {
    log(`${label}: sample ${i + 1}/${count}`);
    out.push(await run());
  }
  return out;
}

const gen = createTransactionGenerator({ users: 10_000, seed: 1, spreadDays: 0 });
const lat = (r: LoadtestResult) => `p50 ${r.p50.toFixed(0)} / p99 ${r.p99.toFixed(0)} / max ${r.max.toFixed(0)} ms`;
const pickMedian = (rs: LoadtestResult[], by: (r: LoadtestResult) => number) => rs.find((r) => by(r) === median(rs.map(by)))!;

// 1. Producer: our client and our transactions path vs Kafka's ProducerPerformance, flat out and
// at a fixed rate below saturation (where latency, not queueing, is what a user sees).
if (want('producer')) {
  const codec = await avroCodec(registry, await registry.getLatestSchemaId(`${names.topic.transactions}-value`));
  const avroRecords = Array.from({ length: 10_000 }, gen);
  const avroPayloads = avroRecords.map((record) => codec.encode(record));
  const avroKeys = avroRecords.map((record) => String(record.user_id));
  const avroSize = Math.round(avroPayloads.reduce((sum, p) => sum + p.length, 0) / avroPayloads.length);
  const producerCount = { small: quick ? 100_000 : 300_000, large: quick ? 30_000 : 100_000 };
  const avro = { payloads: avroPayloads, keys: avroKeys };
  let ourMax = 0;
  for (const size of [avroSize, 1024]) {
    const numRecords = size === 1024 ? producerCount.large : producerCount.small;
    for (const acks of [0, 1, -1]) {
      const label = `${size} B, acks=${acks === -1 ? 'all' : acks}`;
      const ours = await sampled(`producer ours ${label}`, () =>
        runLoadtest(config, { topic: perfTopic, numRecords, recordSize: size, acks, throughput: -1, quiet: true, ...(size === avroSize ? avro : {}) }),
      );
      const theirs = await sampled(`producer ProducerPerformance ${label}`, () => runProducerPerformance(config, { topic: perfTopic, numRecords, recordSize: size, acks }));
      const o = median(ours.map((r) => r.recordsPerSecond));
      const th = median(theirs.map((r) => r.recordsPerSecond));
      if (size === avroSize && acks === -1) ourMax = o;
      const target = acks === -1 ? (size === 1024 ? 0.8 : 0.5) : undefined;
      const rate = (r: LoadtestResult) => r.recordsPerSecond;
      addRow({
        name: `producer, our client flat out (pre-encoded), ${label}`,
        value: `${formatCount(o)} rec/s, ${pickMedian(ours, rate).mbPerSecond.toFixed(1)} MB/s; ${lat(pickMedian(ours, rate))}`,
        spread: spread(ours.map(rate)),
        reference: `ProducerPerformance ${formatCount(th)} rec/s; ${lat(pickMedian(theirs, rate))}`,
        ratio: (o / th).toFixed(2),
        target: target ? `≥ ${target}×` : '',
        met: target ? verdict(o / th >= target) : '',
      });
      results[`producer ${label}`] = { ours, theirs };
    }
  }

  // Half of our own flat-out rate: both clients keep up, so latency is linger plus the round trip.
  const steadyRate = Math.round(ourMax / 2 / 1000) * 1000;
  const steadyCount = steadyRate * (quick ? 10 : 20);
  const p99 = (r: LoadtestResult) => r.p99;
  // Each sample starts on a quiet machine, as the freshness rows do: the flat-out rows before it
  // leave the brokers busy for seconds, and a p99 taken then would measure their backlog.
  const busyBefore: number[] = [];
  const quietly = async <T>(run: () => T | Promise<T>): Promise<T> => {
    busyBefore.push(await quietMachine());
    return run();
  };
  const oursSteady = await sampled(`producer ours at ${formatCount(steadyRate)} rec/s`, () =>
    quietly(() => runLoadtest(config, { topic: perfTopic, numRecords: steadyCount, recordSize: avroSize, acks: -1, throughput: steadyRate, quiet: true, ...avro })),
  );
  const theirsSteady = await sampled(`producer ProducerPerformance at ${formatCount(steadyRate)} rec/s`, () =>
    quietly(() => runProducerPerformance(config, { topic: perfTopic, numRecords: steadyCount, recordSize: avroSize, acks: -1, throughput: steadyRate })),
  );
  const ourP99 = median(oursSteady.map(p99));
  const theirP99 = median(theirsSteady.map(p99));
  addRow({
    name: `producer latency at a fixed ${formatCount(steadyRate)} rec/s (half our max), ${avroSize} B, acks=all`,
    value: lat(pickMedian(oursSteady, p99)),
    spread: `${oursSteady.length > 1 ? `p99 ${Math.min(...oursSteady.map(p99)).toFixed(0)}–${Math.max(...oursSteady.map(p99)).toFixed(0)} ms; ` : ''}each sample from a quiet start (CPU ${busyBefore.map((busy) => `${(busy * 100).toFixed(0)}%`).join(', ')} before)`,
    reference: `ProducerPerformance ${lat(pickMedian(theirsSteady, p99))}`,
    ratio: (ourP99 / Math.max(theirP99, 1)).toFixed(2),
    target: 'p99 ≤ 2× (ratio of p99s)',
    met: verdict(ourP99 <= 2 * Math.max(theirP99, 1)),
  });
  results.producerSteady = { rate: steadyRate, ours: oursSteady, theirs: theirsSteady };

  const pathSamples = await sampled('producer transactions path (rules + Avro + send)', async () => {
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
  const reference = median((results[`producer ${avroSize} B, acks=all`] as { theirs: LoadtestResult[] }).theirs.map((r) => r.recordsPerSecond));
  const pathRate = median(pathSamples);
  addRow({
    name: `producer, transactions path (rules + Avro + send), ${avroSize} B, acks=all`,
    value: `${formatCount(pathRate)} rec/s`,
    spread: spread(pathSamples),
    reference: `ProducerPerformance ${formatCount(reference)} rec/s`,
    ratio: (pathRate / reference).toFixed(2),
    target: '≥ 0.5×',
    met: verdict(pathRate / reference >= 0.5),
  });
}

// 2 + 3. Lake sink and features job vs a raw consume with the same client (and ConsumerPerformance).
if (want('pipeline')) {
  const pipelineSamples: Array<Awaited<ReturnType<typeof benchPipeline>>> = [];
  for (let i = 0; i < samples; i++) {
    log(`pipeline: sample ${i + 1}/${samples}`);
    pipelineSamples.push(await benchPipeline(config, quick ? 1_000_000 : 2_000_000));
  }
  results.pipeline = pipelineSamples;
  const ratioOf = (p: (typeof pipelineSamples)[number], job: 'backup' | 'features') => p[job].recordsPerSecond / p.raw.recordsPerSecond;
  for (const job of ['backup', 'features'] as const) {
    const ratios = pipelineSamples.map((p) => ratioOf(p, job));
    const picked = pipelineSamples.find((p) => ratioOf(p, job) === median(ratios))!;
    const peak = Math.max(...pipelineSamples.map((p) => p[job].peakRssMb));
    const ratio = median(ratios);
    addRow({
      name:
        job === 'backup'
          ? `transactions-job-backup → Parquet on MinIO, ${formatCount(picked.records)} records (peak RSS ${peak} MB)`
          : `transactions-ml-features-job, exactly-once, ${formatCount(picked.records)} records (peak RSS ${peak} MB)`,
      value: `${formatCount(picked[job].recordsPerSecond)} rec/s`,
      spread: ratios.length > 1 ? `ratio ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}` : '',
      reference: `raw consume ${formatCount(picked.raw.recordsPerSecond)} rec/s (batches of ${formatCount(picked.raw.batchSize)}); ConsumerPerformance ${formatCount(picked.consumerPerformance.recordsPerSecond)} rec/s`,
      ratio: ratio.toFixed(2),
      target: job === 'backup' ? '≥ 0.8×, RSS ≤ 512 MB' : '≥ 0.6×',
      met: job === 'backup' ? verdict(ratio >= 0.8 && peak <= 512) : verdict(ratio >= 0.6),
    });
  }
}

// 4. Backfill vs DuckDB SQL over the same archive.
if (want('backfill')) {
  const backfill = await benchBackfill(config, quick ? 2_000_000 : 10_000_000, quick ? 4 : 10);
  results.backfill = backfill;
  const best = Math.max(backfill.one, backfill.two);
  addRow({
    name: `backfill of ${formatCount(backfill.rows)} archived rows (best of 1 and 2 workers)`,
    value: `${formatCount(best)} rows/s`,
    spread: `${formatCount(backfill.one)} (1 worker), ${formatCount(backfill.two)} (2)`,
    reference: `DuckDB SQL ${formatCount(backfill.duckdb)} rows/s`,
    ratio: (best / backfill.duckdb).toFixed(2),
    target: '≥ 0.6×',
    met: verdict(best / backfill.duckdb >= 0.6),
  });
}

const redis = createRedis(config);

// 5. Redis lookups vs redis-benchmark GET.
if (want('redis')) {
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
    addRow({
      name: `getUserFeatures, ${batch} user${batch > 1 ? 's' : ''} per call (10k users, 17% missing)`,
      value: `p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`,
      spread: timings.length > 1 ? `p99 ${Math.min(...timings.map((s) => s.p99)).toFixed(3)}–${Math.max(...timings.map((s) => s.p99)).toFixed(3)}` : '',
      reference: `redis-benchmark GET p50 ${refP50} ms, p99 ${refP99} ms`,
      ratio: (p99 / refP99).toFixed(2),
      target: batch === 1 ? '≤ 1.5× (p99)' : 'p99 ≤ 2 ms',
      met: verdict(batch === 1 ? p99 / refP99 <= 1.5 : p99 <= 2),
    });
    results[`redis ${batch}`] = { timings, redisBenchmark: { p50: refP50, p99: refP99 } };
  }

  // The same lookups over HTTP: the feature server on this process's event loop, wrk (one
  // connection, one thread) in a child process, as a serving client in another language would.
  const servingContext = createClientContext(config, { namespace, component: 'bench', redis: { connectTimeout: 3_000 } });
  const server = await startFeatureServer(servingContext, { port: 0, host: '127.0.0.1', maxBodyBytes: 1024 * 1024, maxEntities: 10_000, maxAgeSeconds: {}, log: createLogger('bench') });
  const scripts = mkdtempSync(join(tmpdir(), 'lakestream-wrk-'));
  try {
    const url = `${server.url}get-online-features`;
    const request = (users: number) => ({ features: ['user_transaction_counts:total_transactions_count'], entities: { user_id: Array.from({ length: users }, (_, k) => (k * 101) % 12_000) } });
    await runWrk(url, 2, 1, wrkPostScript(scripts, 'warmup', request(100)), 1);
    for (const [users, target] of [[1, 2], [100, 5]] as const) {
      const runs: WrkFigures[] = [];
      for (let sample = 0; sample < samples; sample++) runs.push(await runWrk(url, quick ? 5 : 15, 1, wrkPostScript(scripts, `users-${users}`, request(users)), 1));
      const p50 = median(runs.map((run) => run.p50Ms));
      const p99 = median(runs.map((run) => run.p99Ms));
      const failed = runs.reduce((sum, run) => sum + run.non2xx + run.errors, 0);
      addRow({
        name: `feature server, POST /get-online-features, ${users} user${users > 1 ? 's' : ''} (wrk, 1 connection)`,
        value: `p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, ${Math.round(median(runs.map((run) => run.requestsPerSecond))).toLocaleString('en-US')} req/s${failed ? `, ${failed} failed` : ''}`,
        spread: runs.length > 1 ? `p99 ${Math.min(...runs.map((run) => run.p99Ms)).toFixed(3)}–${Math.max(...runs.map((run) => run.p99Ms)).toFixed(3)}` : '',
        reference: 'Feast Python feature server: p99 7.27 ms, 5 feature views (its docs)',
        ratio: '',
        target: `p99 ≤ ${target} ms`,
        met: verdict(p99 <= target && !failed),
      });
      results[`feature server ${users}`] = runs;
    }
  } finally {
    await server.close();
    await servingContext.close();
    rmSync(scripts, { recursive: true, force: true });
  }
}

type Freshness = { p50: number; p99: number; max: number; count: number };

/**
 * Produce → count visible in Redis, at a steady 5,000 transactions/s, with the features job and
 * the Redis sinks running under `profile`, on topics of their own so no earlier backlog is in the
 * way. Every 20 ms tick carries one probe transaction of a new user; its latency is from send to
 * its count, and to its 1 h window, being readable in Redis (polled every 2 ms), after a 5 s warm-up.
 */
async function freshness(profile: Profile, rate: number): Promise<{ counts: Freshness; window: Freshness; settledMs: number; busyAtStart: number }> {
  const idleAtStart = await quietMachine();
  const freshNamespace = `${namespace}-fresh-${profile}-${rate}`;
  createdNamespaces.push(freshNamespace);
  const freshNames = catalog(freshNamespace);
  await applyInfra(topicsFor(freshNamespace), { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
  log(`freshness (${profile} profile): starting the features job and the Redis sink`);
  const jobs = startJobProcess(['transactions-ml-features-job', 'user-transaction-counts-redis-sink', 'user-transaction-windows-redis-sink'], ['--namespace', freshNamespace], { LAKESTREAM_PROFILE: profile });
  const producer = await createTransactionsProducer(config, { topic: freshNames.topic.transactions, lingerMs: profile === 'latency' ? 0 : 5 });
  const fresh = new LatencyRecorder();
  const freshWindow = new LatencyRecorder();
  const pending = new Map<number, number>();
  const pendingWindow = new Map<number, number>();
  const windows = freshNames.features.userTransactionWindows;
  const seconds = quick ? 15 : 30;
  let probeUser = 50_000_000;
  // Settled first: the jobs started, assigned and restored, as a lone probe through the whole
  // path shows (its count and its window readable in Redis), so the figures are not a catch-up
  // of the jobs' start-up (a tsx start of three jobs took seconds on a loaded machine).
  const settleStarted = performance.now();
  const settleProbe = { ...gen(), user_id: probeUser++ };
  await producer.send([settleProbe]);
  for (;;) {
    const [count] = await getUserFeatures(redis, [settleProbe.user_id], freshNames.features.userTransactionCounts.redisPrefix);
    const [window] = await readFeatures(redis, windows, [settleProbe.user_id]);
    if (count && window) break;
    if (performance.now() - settleStarted > 180_000) throw new Error(`freshness (${profile}): the jobs did not settle within 180 s: ${jobs.output().slice(-2_000)}`);
    await sleep(20);
  }
  const settledMs = performance.now() - settleStarted;
  log(`freshness (${profile}, ${rate} tx/s): settled (a lone probe visible in Redis) after ${(settledMs / 1000).toFixed(1)} s`);
  const warmUntil = performance.now() + 5_000;
  let streaming = true;
  const watcher = (async () => {
    let deadline = Number.POSITIVE_INFINITY;
    while (streaming || ((pending.size || pendingWindow.size) && performance.now() < deadline)) {
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
      const windowUsers = [...pendingWindow.keys()];
      if (windowUsers.length) {
        const found = await readFeatures(redis, windows, windowUsers);
        const now = performance.now();
        found.forEach((feature, i) => {
          // a new user's first transaction: its 1 h window holds it
          if (!feature || Number(feature.count_1h) < 1) return;
          const sentAt = pendingWindow.get(windowUsers[i]!)!;
          pendingWindow.delete(windowUsers[i]!);
          if (sentAt >= warmUntil) freshWindow.record(now - sentAt);
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
    pending.set(probe.user_id, sentAt);
    pendingWindow.set(probe.user_id, sentAt);
    void producer.send([...batch, probe]);
  }
  streaming = false;
  await watcher;
  await producer.close();
  await jobs.terminate();
  // where a batch's time went: each job's last stats line (batches, mean batch and commit ms)
  const stats = jobs.output().split('\n').filter((line) => line.includes('stats') && line.includes('"job"'));
  const lastStats = new Map<string, string>();
  for (const line of stats) lastStats.set(/"job":"([^"]+)"/.exec(line)?.[1] ?? '', line);
  for (const line of lastStats.values()) log(`freshness (${profile}) ${line.slice(0, 600)}`);
  return { counts: { ...fresh.summary(), count: fresh.count }, window: { ...freshWindow.summary(), count: freshWindow.count }, settledMs, busyAtStart: idleAtStart };
}

// 6. Freshness, under each profile.
if (want('freshness')) {
  // the target rate under both profiles, then lower rates: what the machine sustains
  const runs = [['latency', 5_000], ['throughput', 5_000], ['latency', 2_000], ['latency', 1_000]] as const;
  for (const [profile, rate] of runs) {
    const measured = await freshness(profile, rate);
    results[`freshness ${profile} ${rate}`] = measured;
    for (const [what, f] of [['count', measured.counts], ['1 h window', measured.window]] as const) {
      addRow({
        name: `produce → ${what} visible in Redis at ${formatCount(rate)} tx/s, LAKESTREAM_PROFILE=${profile} (${f.count} probes)`,
        value: `p50 ${f.p50.toFixed(0)} ms, p99 ${f.p99.toFixed(0)} ms`,
        spread: `max ${f.max.toFixed(0)} ms; from a settled start (CPU ${(measured.busyAtStart * 100).toFixed(0)}% before, a lone probe through in ${(measured.settledMs / 1000).toFixed(1)} s)`,
        reference: '',
        ratio: '',
        target: profile !== 'latency' || rate !== 5_000 ? '' : what === 'count' ? 'p50 < 100 ms, p99 < 500 ms' : 'p99 < 500 ms',
        met: profile !== 'latency' || rate !== 5_000 ? '' : verdict(what === 'count' ? f.p50 < 100 && f.p99 < 500 : f.p99 < 500),
      });
    }
  }
}

/**
 * Produce → row visible in the Iceberg table (a DuckDB reader over the catalog sees it), at a
 * steady 5,000 transactions/s through the backup sink with its default settings, on a topic of
 * its own. Every 20 ms tick carries one probe (a counterpart id of its own); the reader polls
 * the table every 250 ms. The sink's catalog commit latency comes from its own figures.
 */
async function lakeFreshness(): Promise<{ p50: number; p99: number; max: number; count: number; commitP50: number; commitP99: number; commits: number; files: number; compaction: CompactionFigures }> {
  const lakeNamespace = `${namespace}-lake`;
  createdNamespaces.push(lakeNamespace);
  const lakeNames = catalog(lakeNamespace);
  await applyInfra(topicsFor(lakeNamespace), { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
  const context = createClientContext(config, { namespace: lakeNamespace, component: 'bench' });
  // as infra:apply would: the table exists before the first record, so the reader can attach
  await ensureLakeTable(context.lakeTables(), lakeNames, lakeNames.tables.transactions, config.LAKE_BUCKET);
  const sink = createLakeSink(lakeNames.tables.transactions, {}, context);
  await sink.start();
  const producer = await createTransactionsProducer(config, { topic: lakeNames.topic.transactions, lingerMs: 5 });
  const visible = new LatencyRecorder();
  const pending = new Map<number, number>();
  const rate = 5_000;
  const seconds = quick ? 30 : 60;
  const firstProbe = 1_900_000_000;
  let probe = firstProbe;
  let streaming = true;
  const lake = await openLakeWhenCreated(lakeNamespace);
  const watcher = (async () => {
    const deadline = () => (streaming ? Number.POSITIVE_INFINITY : stoppedAt + 30_000);
    while (streaming || (pending.size && performance.now() < deadline())) {
      const rows = (await lake.connection.runAndReadAll(`SELECT counterpart_id FROM transactions WHERE counterpart_id >= ${firstProbe}`)).getRowObjectsJS() as Array<{ counterpart_id: number }>;
      const now = performance.now();
      for (const { counterpart_id: id } of rows) {
        const sentAt = pending.get(id);
        if (sentAt === undefined) continue;
        pending.delete(id);
        visible.record(now - sentAt);
      }
      await sleep(250);
    }
  })();
  let stoppedAt = 0;
  const started = performance.now();
  for (let tick = 0; performance.now() < started + seconds * 1000; tick++) {
    const due = started + tick * 20;
    if (due > performance.now()) await sleep(due - performance.now());
    const batch = Array.from({ length: rate / 50 - 1 }, gen);
    const id = probe++;
    pending.set(id, performance.now());
    void producer.send([...batch, { ...gen(), counterpart_id: id }]);
  }
  stoppedAt = performance.now();
  streaming = false;
  await watcher;
  await producer.close();
  await sink.stop();
  const stats = sink.stats() as unknown as { commitP50Ms: number; commitP99Ms: number; commits: number; filesWritten: number };
  lake.close();
  const compaction = await compactWritten(context, lakeNamespace, lakeNames.tables.transactions.iceberg);
  await context.close();
  return { ...visible.summary(), count: visible.count, commitP50: stats.commitP50Ms, commitP99: stats.commitP99Ms, commits: stats.commits, files: stats.filesWritten, compaction };
}

interface CompactionFigures {
  hours: number;
  filesBefore: number;
  filesAfter: number;
  /** The most files an hour partition holds after compaction. */
  maxFilesPerHour: number;
  smallestMiB: number;
  largestMiB: number;
  snapshotsInMetadata: number;
  seconds: number;
}

/** The sink's files of the freshness run, compacted (open hour included), and what the table then holds. */
async function compactWritten(context: ReturnType<typeof createClientContext>, lakeNamespace: string, ref: Parameters<typeof loadTableState>[1]): Promise<CompactionFigures> {
  const deps = context.lakeTables();
  const files = async () => liveFiles(deps, (await loadTableState(deps, ref))!);
  const before = await files();
  const days = [...new Set(before.map((entry) => new Date(entry.file.partition.dt * 86_400_000).toISOString().slice(0, 10)))];
  const started = performance.now();
  for (const dt of days) await compactDay(context, compactionTarget('transactions', lakeNamespace), dt, { includeOpenHour: true });
  const seconds = (performance.now() - started) / 1000;
  const after = await files();
  const perHour = new Map<string, number>();
  for (const entry of after) perHour.set(`${entry.file.partition.dt}/${entry.file.partition.hour}`, (perHour.get(`${entry.file.partition.dt}/${entry.file.partition.hour}`) ?? 0) + 1);
  const sizes = after.map((entry) => Number(entry.file.sizeBytes) / 2 ** 20);
  const state = (await loadTableState(deps, ref))!;
  return {
    hours: perHour.size,
    filesBefore: before.length,
    filesAfter: after.length,
    maxFilesPerHour: Math.max(0, ...perHour.values()),
    smallestMiB: Math.min(...sizes),
    largestMiB: Math.max(...sizes),
    snapshotsInMetadata: state.loaded.metadata.snapshots?.length ?? 0,
    seconds,
  };
}

/** The namespace's lake once the sink has created its table (DuckDB attaches the catalog then). */
async function openLakeWhenCreated(lakeNamespace: string) {
  for (;;) {
    const lake = await openLake(config, lakeNamespace);
    const [row] = (await lake.connection.runAndReadAll("SELECT count(*) AS n FROM duckdb_databases() WHERE database_name = 'lakehouse'")).getRowObjectsJS() as Array<{ n: bigint }>;
    if (Number(row!.n) > 0) return lake;
    lake.close();
    await sleep(200);
  }
}

if (want('lake')) {
  const f = await lakeFreshness();
  results.lake = f;
  addRow({
    name: `produce → row visible in the Iceberg table at 5,000 tx/s, default sink settings (${f.count} probes, ${f.commits} commits, ${f.files} files)`,
    value: `p50 ${(f.p50 / 1000).toFixed(1)} s, p99 ${(f.p99 / 1000).toFixed(1)} s`,
    spread: `max ${(f.max / 1000).toFixed(1)} s`,
    reference: 'Redpanda Iceberg target lag 60 s; Iceberg Kafka Connect commit interval 300 s',
    ratio: '',
    target: 'p50 ≤ 5 s, p99 ≤ 15 s',
    met: verdict(f.p50 <= 5_000 && f.p99 <= 15_000),
  });
  const c = f.compaction;
  addRow({
    name: `compaction of those hours (${c.hours} hour partitions, ${c.filesBefore} sink files, open hour included, ${c.seconds.toFixed(1)} s)`,
    value: `${c.filesAfter} files, at most ${c.maxFilesPerHour} per hour, ${c.smallestMiB.toFixed(1)}–${c.largestMiB.toFixed(1)} MiB; ${c.snapshotsInMetadata} snapshot${c.snapshotsInMetadata === 1 ? '' : 's'} in the table metadata`,
    spread: '',
    reference: '',
    ratio: '',
    target: '≥ 64 MiB or one file per hour; snapshots bounded',
    met: verdict(c.maxFilesPerHour <= 1 && c.snapshotsInMetadata <= 10),
  });
  addRow({
    name: 'Iceberg catalog commit (Nessie), one round of sink flushes',
    value: `p50 ${f.commitP50} ms, p99 ${f.commitP99} ms`,
    spread: '',
    reference: '',
    ratio: '',
    target: '',
    met: '',
  });
}

// 7. The session scorer, two instances sharing the partitions.
if (want('scorer')) {
  const s = await benchScorer(config, { namespace, quick, log });
  results.scorer = s;
  addRow({
    name: `session scorer, ${s.instances} instances: shop events through (${formatCount(s.events)} events, ${formatCount(s.predictions)} predictions, exactly once)`,
    value: `${formatCount(s.eventsPerSecond)} events/s`,
    spread: '',
    reference: '',
    ratio: '',
    target: '',
    met: '',
  });
  addRow({
    name: `session scorer, ${s.instances} instances: event → prediction readable at ${formatCount(s.latency.rate)} events/s, LAKESTREAM_PROFILE=latency (${s.latency.count} predictions)`,
    value: `p50 ${s.latency.p50.toFixed(0)} ms, p99 ${s.latency.p99.toFixed(0)} ms`,
    spread: `max ${s.latency.max.toFixed(0)} ms`,
    reference: '',
    ratio: '',
    target: '',
    met: '',
  });
}

// 8. The dashboard's first figures, over the main lake as it is (the demo's, earlier benches'):
// what a user opening it sees first, and how long until the lake's cards are filled.
if (want('dashboard')) {
  const collector = createCollector(config);
  try {
    const startedAt = performance.now();
    const first = await collector.snapshot();
    const firstMs = performance.now() - startedAt;
    let filled = first;
    while (filled.lake.refreshedAt === null && performance.now() - startedAt < 120_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      filled = await collector.snapshot();
    }
    const lakeMs = performance.now() - startedAt;
    const warmAt = performance.now();
    await collector.snapshot();
    const warmMs = performance.now() - warmAt;
    const files = filled.lake.tables.reduce((sum, table) => sum + table.files, 0);
    results.dashboard = { firstMs, lakeMs, warmMs, tables: filled.lake.tables.length, files };
    addRow({
      name: `dashboard: first snapshot on a fresh start (main lake: ${filled.lake.tables.length} tables, ${formatCount(files)} data files)`,
      value: `${firstMs.toFixed(0)} ms`,
      spread: `lake cards filled after ${(lakeMs / 1000).toFixed(1)} s; warm snapshot ${warmMs.toFixed(0)} ms`,
      reference: '',
      ratio: '',
      target: '≤ 1,000 ms',
      met: verdict(firstMs <= 1_000),
    });
  } finally {
    await collector.close();
  }
}

console.log(`\n## lakestream benchmarks (${quick ? 'quick, 1 sample' : `${samples} samples, median`}; ${config.KAFKA_BROKERS.length} brokers)\n`);
console.log('| path | ours | spread | reference, same stack, same run | ours / ref | target | | machine while measured |');
console.log('|---|---|---|---|---:|---|---|---|');
for (const row of rows) console.log(`| ${row.name} | ${row.value} | ${row.spread} | ${row.reference} | ${row.ratio} | ${row.target} | ${row.met} | ${row.machine} |`);
const dir = join(repoRoot, 'benchmarks', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `bench-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(file, JSON.stringify({ rows, results }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2));
console.log(`\nresults: ${file}`);

const objectStore = createObjectStore(createS3(config), config.LAKE_BUCKET);
for (const ns of createdNamespaces) await dropNamespace(config, ns, { admin, objectStore, redis }, ns === namespace ? [perfTopic] : []);
await redis.quit();
await admin.close();
process.exit(0);
