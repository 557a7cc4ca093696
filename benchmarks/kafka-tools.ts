import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Config } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { kafkaLibDir } from '../infra/stack/kafka.ts';
import type { LoadtestResult } from './loadtest.ts';

/** Kafka's own perf tools, run from the jars the local stack installed. */
function kafkaTool(config: Config, mainClass: string, args: string[]): string {
  const result = spawnSync(
    'java',
    ['-Xmx512m', '-cp', `${kafkaLibDir({ cacheDir: config.LAKESTREAM_CACHE_DIR })}/*`, `-Dlog4j2.configurationFile=${join(config.LAKESTREAM_STACK_DIR, 'kafka-log4j2.properties')}`, mainClass, ...args],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) throw new LakestreamError('KAFKA_ERROR', `${mainClass} failed: ${result.stderr.slice(-2000)}`);
  return result.stdout;
}

/** org.apache.kafka.tools.ProducerPerformance, parsed from its final line. */
export function runProducerPerformance(
  config: Config,
  options: { topic: string; numRecords: number; recordSize: number; acks: number; throughput?: number },
): LoadtestResult {
  const out = kafkaTool(config, 'org.apache.kafka.tools.ProducerPerformance', [
    '--topic', options.topic,
    '--num-records', String(options.numRecords),
    '--record-size', String(options.recordSize),
    '--throughput', String(options.throughput ?? -1),
    // the same batching as our loadtest's librdkafka settings, so the clients are compared, not their defaults
    '--producer-props', `bootstrap.servers=${config.KAFKA_BROKERS.join(',')}`, `acks=${options.acks === -1 ? 'all' : options.acks}`, 'linger.ms=5',
    'batch.size=1000000', 'buffer.memory=1073741824', `enable.idempotence=${options.acks === -1}`,
  ]);
  const line = out.trim().split('\n').reverse().find((l) => l.includes('99.9th'))!;
  const n = (pattern: RegExp) => Number(pattern.exec(line)![1]);
  return {
    records: n(/^(\d+) records sent/),
    recordsPerSecond: n(/([\d.]+) records\/sec/),
    mbPerSecond: n(/\(([\d.]+) MB\/sec\)/),
    avg: n(/([\d.]+) ms avg latency/),
    max: n(/([\d.]+) ms max latency/),
    p50: n(/(\d+) ms 50th/),
    p95: n(/(\d+) ms 95th/),
    p99: n(/(\d+) ms 99th/),
    p999: n(/(\d+) ms 99.9th/),
  };
}

/** org.apache.kafka.tools.ConsumerPerformance over `records` of `topic`, in records/s. */
export function runConsumerPerformance(config: Config, topic: string, records: number): { recordsPerSecond: number } {
  const out = kafkaTool(config, 'org.apache.kafka.tools.ConsumerPerformance', [
    '--bootstrap-server', config.KAFKA_BROKERS.join(','),
    '--topic', topic,
    '--messages', String(records),
    '--timeout', '60000',
    '--hide-header',
  ]);
  // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, …
  const fields = out.trim().split('\n').pop()!.split(',').map((field) => field.trim());
  return { recordsPerSecond: Number(fields[5]) };
}
