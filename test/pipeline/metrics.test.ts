import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createProducer } from '../../core/kafka-producer.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from './fixture.ts';

/** One sample of a scrape: `name{labels} value`, for the labels given (others are ignored). */
function sample(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of body.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) total = (total ?? 0) + Number(match[3]);
  }
  return total;
}

test('each job process serves Prometheus metrics, and its counters follow the data', { timeout: 240_000 }, async (t) => {
  const { namespace, names } = await setupPipeline(t, 'metrics');
  const jobs = spawnJobs(t, ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-counts-redis-sink'], [
    '--namespace', namespace, '--flush-interval-ms', '1000', '--metrics-port', '0',
  ]);
  const url = await waitFor('the metrics endpoint to be announced', async () => /"msg":"metrics listening".*?"url":"([^"]+)"/.exec(jobs.output())?.[1], 60_000, 200);
  const scrape = async () => {
    const response = await fetch(url);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return response.text();
  };
  const backup = { job: `${namespace}.transactions-job-backup` };
  const features = { job: `${namespace}.transactions-ml-features-job` };
  const redisSink = { job: `${namespace}.user-transaction-counts-redis-sink` };

  const before = await scrape();
  assert.ok(sample(before, 'process_resident_memory_bytes')! > 10e6, 'process memory is exported');
  assert.equal(sample(before, 'lakestream_records_in_total', backup) ?? 0, 0);
  assert.match(before, /# TYPE lakestream_lake_flush_duration_seconds histogram/);
  assert.match(before, /# HELP lakestream_records_in_total Records a job read from Kafka/);
  assert.equal((await fetch(new URL('/healthz', url))).status, 200);

  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  await producer.send(Array.from({ length: 1_000 }, createTransactionGenerator({ users: 40, seed: 11, spreadDays: 0 })));
  const raw = createProducer(config, 'lakestream-test-raw');
  await raw.connect();
  onCleanup(t, () => raw.disconnect());
  await raw.send({ topic: names.topic.transactions, messages: [{ key: '1', value: Buffer.from('not avro') }] });

  let latest = '';
  const after = await waitFor('the metrics to count every record', async () => {
    const body = (latest = await scrape());
    const done = sample(body, 'lakestream_records_out_total', { ...redisSink, output: 'redis:userTransactionCounts' }) !== undefined
      && sample(body, 'lakestream_records_out_total', { ...backup, output: 'lake:transactions' }) === 1_000
      && sample(body, 'lakestream_records_in_total', features) === 1_001;
    return done ? body : undefined;
  }, 90_000, 500).catch((error: unknown) => {
    throw new Error(`${String(error)}; last scrape:\n${latest.split('\n').filter((line) => line.startsWith('lakestream_') && !line.includes('_bucket')).join('\n')}`);
  });

  assert.equal(sample(after, 'lakestream_records_in_total', { ...backup, topic: names.topic.transactions }), 1_001, 'every record read, the bad one too');
  assert.equal(sample(after, 'lakestream_dead_letters_total', { ...backup, reason: 'magic-byte' }), 1, jobs.output().slice(-1_000));
  assert.equal(sample(after, 'lakestream_dead_letters_total', { ...features, reason: 'magic-byte' }), 1);
  assert.equal(sample(after, 'lakestream_records_out_total', { ...features, output: names.topic.userTransactionCounts }), 1_000, 'one count update per transaction, after its commit');
  assert.ok(sample(after, 'lakestream_transaction_commit_duration_seconds_count', features)! >= 1);
  const flushes = sample(after, 'lakestream_lake_flushes_total', backup)!;
  assert.ok(flushes >= 1);
  assert.equal(sample(after, 'lakestream_lake_flush_duration_seconds_count', backup), flushes, 'one latency sample per flush');
  assert.equal(sample(after, 'lakestream_lake_flush_bytes_count', backup), flushes);
  assert.ok(sample(after, 'lakestream_lake_flush_bytes_sum', backup)! > 10_000, 'the Parquet bytes written');
  assert.ok(sample(after, 'lakestream_redis_write_duration_seconds_count', redisSink)! >= 1);
  assert.ok(sample(after, 'lakestream_batch_duration_seconds_count', backup)! >= 1);
  assert.equal(sample(after, 'lakestream_assigned_partitions', backup), 6, 'the only member owns all six partitions');

  // librdkafka reports every 5 s: once everything is read, no partition of any job lags
  const lagged = await waitFor('the consumer lag to be reported and drained', async () => {
    const body = await scrape();
    const lags = [...body.matchAll(/^lakestream_consumer_lag\{job="([^"]+)",topic="[^"]+",partition="\d"\} (\S+)$/gm)];
    const reported = [backup, features, redisSink].every(({ job }) => lags.filter((m) => m[1] === job).length === 6);
    return reported && lags.every((m) => m[2] === '0') ? lags.length : undefined;
  }, 60_000, 1_000);
  assert.equal(lagged, 18, 'six partitions of each of the three jobs');
});
