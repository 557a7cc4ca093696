import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { arg, defineCommand, expect, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import type { KafkaConnection } from '../core/kafka.ts';
import { connectOrExplain } from '../core/kafka-probe.ts';
import { LatencyRecorder } from '../core/stats.ts';

export interface LoadtestOptions {
  topic: string;
  numRecords: number;
  recordSize: number;
  /** 0, 1 or -1 (all). */
  acks: number;
  /** Records per second; -1 = unthrottled (as kafka-producer-perf-test). */
  throughput: number;
  /** Pre-encoded payloads; default: random bytes of recordSize. */
  payloads?: Buffer[];
  keys?: Array<string | null>;
  quiet?: boolean;
}

export interface LoadtestResult {
  records: number;
  recordsPerSecond: number;
  mbPerSecond: number;
  avg: number;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
}

/**
 * Our client's raw produce path, measured the way kafka-producer-perf-test measures Java's:
 * every record's latency from produce() to its delivery report. Uses librdkafka's callback API
 * (delivery reports polled every few ms) rather than a promise per send.
 */
export async function runLoadtest(config: KafkaConnection, options: LoadtestOptions): Promise<LoadtestResult> {
  const producer = new kafkaJavascript.Producer(
    {
      'metadata.broker.list': config.KAFKA_BROKERS.join(','),
      'client.id': 'lakestream-loadtest',
      acks: options.acks,
      'enable.idempotence': options.acks === -1,
      'linger.ms': 5,
      'batch.num.messages': 10_000,
      'batch.size': 1_000_000,
      'queue.buffering.max.messages': 1_000_000,
      'queue.buffering.max.kbytes': 1_048_576,
      partitioner: 'murmur2_random',
      dr_cb: true,
    },
    {},
  );
  await connectOrExplain(producer, config, 10_000);
  producer.setPollInterval(5);
  // Java's send() blocks until the topic's metadata is known and starts its latency clock after;
  // librdkafka queues records meanwhile, which would count the metadata round trip as latency.
  await new Promise<void>((resolve, reject) =>
    producer.getMetadata({ topic: options.topic, timeout: 10_000 }, (err) => (err ? reject(err) : resolve())),
  );
  const latency = new LatencyRecorder();
  const payloads = options.payloads ?? Array.from({ length: 64 }, () => randomBytes(options.recordSize));
  let delivered = 0;
  let failed = 0;
  let bytes = 0;
  let window = { started: performance.now(), count: 0, bytes: 0, latencySum: 0, max: 0 };
  const report = () => {
    const seconds = (performance.now() - window.started) / 1000;
    if (!options.quiet && window.count) {
      console.log(
        `${window.count} records sent, ${(window.count / seconds).toFixed(1)} records/sec (${(window.bytes / seconds / 1048576).toFixed(2)} MB/sec), ` +
          `${(window.latencySum / window.count).toFixed(1)} ms avg latency, ${window.max.toFixed(1)} ms max latency.`,
      );
    }
    window = { started: performance.now(), count: 0, bytes: 0, latencySum: 0, max: 0 };
  };
  const ticker = setInterval(report, 5_000);
  let allDelivered: () => void = () => {};
  const done = new Promise<void>((resolve) => (allDelivered = resolve));
  producer.on('delivery-report', (err, info) => {
    const ms = performance.now() - (info.opaque as number);
    if (err) failed++;
    else {
      delivered++;
      latency.record(ms);
      window.count++;
      window.bytes += info.size;
      window.latencySum += ms;
      window.max = Math.max(window.max, ms);
    }
    if (delivered + failed === options.numRecords) allDelivered();
  });

  const started = performance.now();
  for (let i = 0; i < options.numRecords; i++) {
    if (options.throughput > 0) {
      const due = started + (i / options.throughput) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const payload = payloads[i % payloads.length]!;
    for (;;) {
      try {
        producer.produce(options.topic, null, payload, options.keys?.[i % options.keys.length] ?? null, null, performance.now());
        bytes += payload.length;
        break;
      } catch (error) {
        // the local queue is full: let delivery reports drain it
        if ((error as { code?: number }).code !== kafkaJavascript.CODES.ERRORS.ERR__QUEUE_FULL) throw error;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }
    // yield often: delivery reports (and so the latency clock) wait while this loop runs
    if (i % 1_000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await done;
  const seconds = (performance.now() - started) / 1000;
  clearInterval(ticker);
  await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  if (failed) throw new LakestreamError('DELIVERY_FAILED', `${failed} of ${options.numRecords} records failed`, { context: { topic: options.topic } });
  const l = latency.summary();
  return { records: delivered, recordsPerSecond: delivered / seconds, mbPerSecond: bytes / seconds / 1048576, avg: l.avg, p50: l.p50, p95: l.p95, p99: l.p99, p999: l.p999, max: l.max };
}

export function formatLoadtest(r: LoadtestResult): string {
  return (
    `${r.records} records sent, ${r.recordsPerSecond.toFixed(1)} records/sec (${r.mbPerSecond.toFixed(2)} MB/sec), ${r.avg.toFixed(2)} ms avg latency, ` +
    `${r.max.toFixed(2)} ms max latency, ${Math.round(r.p50)} ms 50th, ${Math.round(r.p95)} ms 95th, ${Math.round(r.p99)} ms 99th, ${Math.round(r.p999)} ms 99.9th.`
  );
}

const command = defineCommand({
  name: 'loadtest',
  usage: ['pnpm run loadtest -- --topic T --num-records N --record-size B [--acks 0|1|all] [--throughput R]'],
  description: `Produces N records of B random bytes with this platform's Kafka client and prints what
kafka-producer-perf-test prints: a progress line every 5 s, then records/s, MB/s and latency
(avg, max, 50th, 95th, 99th, 99.9th percentiles, from produce to acknowledgement). The topic must exist.`,
  options: {
    topic: option('T', 'the topic to produce to', arg.nonEmpty().optional()),
    'num-records': option('N', 'records to produce', arg.positiveInteger().optional()),
    'record-size': option('B', 'bytes per record', arg.positiveInteger().optional()),
    acks: option('0|1|all', 'acknowledgements the producer waits for', arg.oneOf(['0', '1', 'all'] as const).default('all')),
    throughput: option('R', 'records per second, -1 as fast as possible (default -1)', expect('a positive number or -1', (raw) => (raw === '-1' || Number(raw) > 0 ? Number(raw) : undefined)).default(-1)),
  },
});

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values } = args;
  const { topic, 'num-records': numRecords, 'record-size': recordSize, throughput } = values;
  if (!topic || !numRecords || !recordSize) return command.refuse('--topic, --num-records and --record-size are required');
  const acks = values.acks === 'all' ? -1 : Number(values.acks);
  const numbers = { numRecords, recordSize, throughput };
  const result = await runLoadtest(loadConfig(), { topic, acks, ...numbers });
  console.log(formatLoadtest(result));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runCli('loadtest', main);
}
