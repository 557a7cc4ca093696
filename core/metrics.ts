import type { Server } from 'node:http';
import { createGuardedServer } from './http.ts';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LakestreamError } from './errors.ts';
import type { Logger } from './log.ts';

/**
 * The Prometheus metrics of a job process: one registry, one place where every name is defined.
 * Names follow Prometheus conventions (a `lakestream_` prefix, base units, `_total` on counters);
 * `job` is the stream job's name (its consumer group), so one process running many jobs still
 * tells them apart. The Grafana dashboard in infra/monitoring/ queries exactly these names.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const latencyBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const metrics = {
  recordsIn: new Counter({
    name: 'lakestream_records_in_total',
    help: 'Records a job read from Kafka, dead letters included',
    labelNames: ['job', 'topic'] as const,
    registers: [registry],
  }),
  recordsOut: new Counter({
    name: 'lakestream_records_out_total',
    help: 'Records a job made durable: rows in the lake, records produced, features written to Redis',
    labelNames: ['job', 'output'] as const,
    registers: [registry],
  }),
  deadLetters: new Counter({
    name: 'lakestream_dead_letters_total',
    help: 'Records sent to the dead-letter topic, by reason',
    labelNames: ['job', 'reason'] as const,
    registers: [registry],
  }),
  errors: new Counter({
    name: 'lakestream_errors_total',
    help: 'Failures a job retried or stopped on, by kind (batch, restore, tick, consume, commit, fatal)',
    labelNames: ['job', 'kind'] as const,
    registers: [registry],
  }),
  batchDuration: new Histogram({
    name: 'lakestream_batch_duration_seconds',
    help: 'Time to handle one fetched batch, retries included',
    labelNames: ['job'] as const,
    buckets: latencyBuckets,
    registers: [registry],
  }),
  transactionCommitDuration: new Histogram({
    name: 'lakestream_transaction_commit_duration_seconds',
    help: 'Kafka transaction commit latency (exactly-once processors)',
    labelNames: ['job'] as const,
    buckets: latencyBuckets,
    registers: [registry],
  }),
  lakeCommitDuration: new Histogram({
    name: 'lakestream_lake_commit_duration_seconds',
    help: 'Time of one Iceberg catalog commit of a round of lake flushes',
    labelNames: ['job'] as const,
    buckets: latencyBuckets,
    registers: [registry],
  }),
  lakeFlushDuration: new Histogram({
    name: 'lakestream_lake_flush_duration_seconds',
    help: 'Time to write one Parquet file to the lake and record its offsets',
    labelNames: ['job'] as const,
    buckets: latencyBuckets,
    registers: [registry],
  }),
  lakeFlushBytes: new Histogram({
    name: 'lakestream_lake_flush_bytes',
    help: 'Size of one Parquet file written by a flush',
    labelNames: ['job'] as const,
    buckets: [16e3, 64e3, 256e3, 1e6, 4e6, 16e6, 64e6, 256e6],
    registers: [registry],
  }),
  lakeFlushes: new Counter({
    name: 'lakestream_lake_flushes_total',
    help: 'Parquet files written to the lake',
    labelNames: ['job'] as const,
    registers: [registry],
  }),
  redisWriteDuration: new Histogram({
    name: 'lakestream_redis_write_duration_seconds',
    help: 'Latency of one pipelined feature write to Redis',
    labelNames: ['job'] as const,
    buckets: latencyBuckets,
    registers: [registry],
  }),
  consumerLag: new Gauge({
    name: 'lakestream_consumer_lag',
    help: 'Records in a partition the job has not read yet (last stable offset less its position; a transaction commit marker counts as one)',
    labelNames: ['job', 'topic', 'partition'] as const,
    registers: [registry],
  }),
  offsetsDeletedUnread: new Counter({
    name: 'lakestream_offsets_deleted_unread_total',
    help: 'Offsets a job was to read next that retention (or DeleteRecords) removed first, so the consumer resumed at the log start: lost input (a transaction marker counts as one)',
    labelNames: ['job', 'topic', 'partition'] as const,
    registers: [registry],
  }),
  gatewayRequests: new Counter({
    name: 'lakestream_gateway_requests_total',
    help: 'HTTP requests to the gateway, by topic (empty for other paths) and status code',
    labelNames: ['topic', 'status'] as const,
    registers: [registry],
  }),
  gatewayRequestDuration: new Histogram({
    name: 'lakestream_gateway_request_duration_seconds',
    help: 'Time from a publish request to its answer, acknowledgement by Kafka included',
    labelNames: ['topic'] as const,
    buckets: latencyBuckets,
    registers: [registry],
  }),
  featureServerRequests: new Counter({
    name: 'lakestream_feature_server_requests_total',
    help: 'HTTP requests to the feature server, by route (get-online-features, entity, other) and status code',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  }),
  featureServerRequestDuration: new Histogram({
    name: 'lakestream_feature_server_request_duration_seconds',
    help: 'Time from a feature request to its answer, the Redis read included',
    labelNames: ['route'] as const,
    buckets: [0.0001, 0.00025, 0.0005, ...latencyBuckets],
    registers: [registry],
  }),
  assignedPartitions: new Gauge({
    name: 'lakestream_assigned_partitions',
    help: 'Partitions assigned to this member of the job',
    labelNames: ['job'] as const,
    registers: [registry],
  }),
};

/** Every metric name the project defines, for the checks that dashboards and docs only use real ones. */
export const metricNames = Object.values(metrics).map((metric) => (metric as unknown as { name: string }).name);

/** Seconds since `startedAt` (a `performance.now()`), for the histograms. */
export function secondsSince(startedAt: number): number {
  return (performance.now() - startedAt) / 1000;
}

/**
 * Serves `/metrics` (and `/healthz`) on the port; 0 takes a free one. Resolves with the URL once
 * listening, so a caller (or a test) knows where to scrape.
 */
export async function serveMetrics(port: number, log: Logger, host = process.env.METRICS_HOST ?? '0.0.0.0'): Promise<{ url: string; server: Server }> {
  const server = createGuardedServer('metrics', log, (request, response) => {
    if (request.url === '/metrics') {
      registry
        .metrics()
        .then((body) => response.writeHead(200, { 'content-type': registry.contentType }).end(body))
        .catch((error: unknown) => response.writeHead(500).end(String(error)));
    } else if (request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are at /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new LakestreamError('USAGE', `cannot serve metrics on ${host}:${port} (--metrics-port / METRICS_PORT): ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  server.unref();
  const address = server.address() as AddressInfo;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}/metrics`;
  log.info('metrics listening', { url });
  return { url, server };
}
