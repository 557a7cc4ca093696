import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Admin } from '@platformatic/kafka';
import { arg, defineCommand, expect, flag, option, repeated, runCli } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { adminConnection } from '../../core/kafka.ts';
import { LakestreamError, errorMessage } from '../../core/errors.ts';
import { sleep } from '../../core/retry.ts';
import type { StackContext, StackService } from './context.ts';
import { duckdbExtensions } from './duckdb.ts';
import { icebergCatalog } from './iceberg-catalog.ts';
import { kafka, kafkaMode, kafkaUsersDir, stackKafkaConnection } from './kafka.ts';
import { minio, s3UsersDir } from './minio.ts';
import { S3_JOBS_USER } from '../s3-access.ts';
import { logPath, residentKib, runningPid, stopDaemon } from './processes.ts';
import { postgres } from './postgres.ts';
import { redis } from './redis.ts';
import { registry } from './registry.ts';

const services: StackService[] = [kafka, registry, minio, redis, postgres, icebergCatalog, duckdbExtensions];

const command = defineCommand({
  name: 'stack',
  usage: ['pnpm run stack:<up|down|status> [-- options]'],
  description: `Runs the real servers of the local stack on loopback, without Docker: Apache Kafka (KRaft),
a Confluent-compatible Schema Registry (Apicurio), MinIO, Redis, PostgreSQL, an Iceberg REST
catalog (Nessie), and DuckDB's httpfs, avro and iceberg extensions.
Servers are downloaded or built once into LAKESTREAM_CACHE_DIR; data, logs and pid files live in
LAKESTREAM_STACK_DIR.

  up        install what is missing, start what is not running, wait until all are healthy
  down      stop the servers this stack started (by pid file)
  status    show each server's pid, health and memory`,
  positionals: true,
  options: {
    brokers: option('N', 'up: 1 or 3 Kafka nodes (default 3, or as the stack was built)', expect('1 or 3', (raw) => (raw === '1' || raw === '3' ? Number(raw) : undefined)).optional()),
    node: repeated('N', 'up: start only Kafka node N, for bringing a killed broker back one at a time; the other servers are left as they are', arg.positiveInteger()),
    secure: flag('up: Kafka without its open listener: clients sign in with SASL/SCRAM (ports + 100, or + 200 over TLS) and get only what their ACLs allow; passwords in <stack dir>/secrets (see docs/decisions/0011-security.md)'),
    wipe: flag('down: also delete the stack directory (all data)'),
  },
});

function progress(message: string): void {
  process.stdout.write(`  ${message}\n`);
}

async function waitHealthy(ctx: StackContext, service: StackService): Promise<void> {
  const deadline = Date.now() + service.startTimeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      await service.check(ctx);
      return;
    } catch (error) {
      lastError = error;
      await sleep(500);
    }
  }
  const logs = service.daemons(ctx).map((name) => logPath(ctx.stackDir, name));
  throw new LakestreamError(
    'STACK_START_TIMEOUT',
    `${service.name} was not healthy after ${service.startTimeoutMs / 1000}s (${errorMessage(lastError)}); see ${logs.join(', ') || 'its install output above'}`,
    { context: { service: service.name, log: logs.join(',') } },
  );
}

/** Starts the given Kafka nodes alone and waits until each answers (the others may be down). */
async function upNodes(ctx: StackContext, nodes: number[]): Promise<void> {
  const started = Date.now();
  await kafka.start({ ...ctx, nodes });
  const connection = stackKafkaConnection(ctx);
  for (const node of nodes) {
    const deadline = Date.now() + kafka.startTimeoutMs;
    for (;;) {
      const admin = new Admin({ clientId: 'lakestream-stack', bootstrapBrokers: [connection.KAFKA_BROKERS[node - 1]!], retries: 0, timeout: 3_000, ...adminConnection(connection) });
      try {
        await admin.metadata({ topics: [] });
        break;
      } catch (error) {
        if (Date.now() > deadline) throw new LakestreamError('STACK_START_TIMEOUT', `kafka-${node} did not answer within ${kafka.startTimeoutMs / 1000}s (${errorMessage(error)}); see ${logPath(ctx.stackDir, `kafka-${node}`)}`);
        await sleep(500);
      } finally {
        await admin.close().catch(() => {});
      }
    }
  }
  console.log(`stack: kafka node${nodes.length > 1 ? 's' : ''} ${nodes.join(', ')} up in ${((Date.now() - started) / 1000).toFixed(1)}s`);
}

async function up(ctx: StackContext): Promise<void> {
  const started = Date.now();
  mkdirSync(ctx.stackDir, { recursive: true });
  console.log(`stack: installing into ${ctx.cacheDir} (skipped where already cached)`);
  // Installs are network- or CPU-bound on different resources, so they run side by side.
  const installs = await Promise.allSettled(services.map((service) => service.install(ctx)));
  const failed = installs.flatMap((result) => (result.status === 'rejected' ? [errorMessage(result.reason)] : []));
  if (failed.length) throw new LakestreamError('STACK_INSTALL_FAILED', failed.join('\n'));
  console.log(`stack: starting (${ctx.brokers} Kafka node${ctx.brokers > 1 ? 's' : ''})`);
  for (const service of services) await service.start(ctx);
  await Promise.all(
    services.map(async (service) => {
      await waitHealthy(ctx, service);
      await service.ready?.(ctx);
    }),
  );
  writeStackEnv(ctx);
  for (const service of services) console.log(`  ${service.name.padEnd(14)} ${service.endpoint(ctx)}`);
  console.log(`stack: up in ${((Date.now() - started) / 1000).toFixed(1)}s`);
}

/** The endpoints of the running stack, read by loadConfig() when a variable is not set. */
function writeStackEnv(ctx: StackContext): void {
  const kafkaConnection = stackKafkaConnection(ctx);
  const lines = [
    `KAFKA_BROKERS=${kafkaConnection.KAFKA_BROKERS.join(',')}`,
    ...(ctx.secure ? [`KAFKA_SECURITY_PROTOCOL=${kafkaConnection.KAFKA_SECURITY_PROTOCOL}`] : []),
    `KAFKA_CREDENTIALS_DIR=${kafkaUsersDir(ctx)}`,
    `SCHEMA_REGISTRY_URL=${ctx.config.SCHEMA_REGISTRY_URL}`,
    `S3_ENDPOINT=${ctx.config.S3_ENDPOINT}`,
    // --secure: commands use the jobs' S3 user, limited to the lake's prefixes, not MinIO's root
    ...(ctx.secure ? [`S3_ACCESS_KEY_ID=${S3_JOBS_USER}`, `S3_SECRET_ACCESS_KEY_FILE=${join(s3UsersDir(ctx), S3_JOBS_USER)}`] : []),
    `REDIS_URL=${ctx.config.REDIS_URL}`,
    `POSTGRES_URL=${ctx.config.POSTGRES_URL}`,
    `ICEBERG_CATALOG_URL=${ctx.config.ICEBERG_CATALOG_URL}`,
  ];
  writeFileSync(join(ctx.stackDir, 'stack.env'), lines.join('\n') + '\n');
}

async function down(ctx: StackContext, wipe: boolean): Promise<void> {
  const names = services.flatMap((service) => service.daemons({ ...ctx, brokers: 3 }));
  const stopped = await Promise.all(names.map(async (name) => ((await stopDaemon(ctx.stackDir, name)) ? name : undefined)));
  const list = stopped.filter(Boolean);
  console.log(list.length ? `stack: stopped ${list.join(', ')}` : 'stack: nothing of ours was running');
  if (wipe) for (const service of services) service.wipe?.(ctx);
  if (wipe && existsSync(ctx.stackDir)) {
    rmSync(ctx.stackDir, { recursive: true, force: true });
    console.log(`stack: wiped ${ctx.stackDir}`);
  }
}

async function status(ctx: StackContext): Promise<boolean> {
  let allHealthy = true;
  let totalKib = 0;
  for (const service of services) {
    const pids = service.daemons(ctx).map((name) => runningPid(ctx.stackDir, name));
    const kib = pids.reduce<number>((sum, pid) => sum + (pid ? residentKib(pid) : 0), 0);
    totalKib += kib;
    let health = 'healthy';
    try {
      await service.check(ctx);
    } catch (error) {
      health = `DOWN (${errorMessage(error)})`;
      allHealthy = false;
    }
    const pidText = pids.length ? `pid ${pids.map((pid) => pid ?? '-').join(',')}` : '';
    console.log(`  ${service.name.padEnd(14)} ${health.padEnd(10)} ${pidText.padEnd(24)} ${kib ? `${(kib / 1024).toFixed(0)} MiB` : ''}`);
  }
  console.log(`stack: ${allHealthy ? 'all healthy' : 'not all healthy'}, ${(totalKib / 1024).toFixed(0)} MiB resident`);
  return allHealthy;
}

/** The size of the cluster that `stack:up` last built (3 for a new stack). */
function builtBrokers(stackDir: string): number {
  const file = join(stackDir, 'kafka-cluster.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { brokers: number }).brokers : 3;
}

async function main(): Promise<void> {
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  const subcommand = positionals[0];
  if (!subcommand || !['up', 'down', 'status'].includes(subcommand)) return command.refuse('expected up, down or status');
  const config = loadConfig(process.env, { useStackEnv: false });
  const brokers = values.brokers ?? builtBrokers(config.LAKESTREAM_STACK_DIR);
  const nodes = values.node;
  // bringing nodes back or looking at the stack keeps the mode it runs in
  const secure = subcommand === 'up' && !nodes.length ? values.secure : kafkaMode(config.LAKESTREAM_STACK_DIR) === 'secure';
  const ctx: StackContext = { config, brokers, secure, stackDir: config.LAKESTREAM_STACK_DIR, cacheDir: config.LAKESTREAM_CACHE_DIR, progress };
  const badNode = nodes.find((node) => node > brokers);
  if (badNode !== undefined) throw new LakestreamError('USAGE', `--node must be a Kafka node from 1 to ${brokers}, got ${badNode}`);
  if (subcommand === 'up' && nodes.length) await upNodes(ctx, nodes);
  else if (subcommand === 'up') await up(ctx);
  else if (subcommand === 'down') await down(ctx, values.wipe);
  else if (!(await status(ctx))) process.exitCode = 1;
}

runCli('stack', main);
