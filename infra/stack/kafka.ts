import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Admin } from '@platformatic/kafka';
import { repoRoot } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { type StackContext, type StackService, portOf } from './context.ts';
import { isInstalled, markInstalled, run } from './install.ts';
import { startDaemon } from './processes.ts';

export const KAFKA_VERSION = '4.1.1';

export const kafkaLibDir = (ctx: Pick<StackContext, 'cacheDir'>) => join(ctx.cacheDir, 'kafka', KAFKA_VERSION, 'lib');
const nodeDir = (ctx: StackContext, nodeId: number) => join(ctx.stackDir, `kafka-${nodeId}`);

export function brokerAddresses(ctx: Pick<StackContext, 'config' | 'brokers'>): string[] {
  const addresses = ctx.config.KAFKA_BROKERS.slice(0, ctx.brokers);
  if (addresses.length < ctx.brokers) {
    throw new LakestreamError('CONFIG_INVALID', `KAFKA_BROKERS lists ${addresses.length} brokers but the stack starts ${ctx.brokers}`, {
      context: { variable: 'KAFKA_BROKERS' },
    });
  }
  return addresses;
}

/** Small, quiet brokers for a 2-core machine; the replication settings follow the cluster size. */
function serverProperties(ctx: StackContext, nodeId: number): string {
  const addresses = brokerAddresses(ctx);
  const host = (address: string) => address.slice(0, address.lastIndexOf(':'));
  const voters = addresses.map((address, i) => `${i + 1}@${host(address)}:${portOf(address) + 1}`).join(',');
  const own = addresses[nodeId - 1]!;
  const replication = Math.min(3, ctx.brokers);
  const minIsr = ctx.brokers >= 3 ? 2 : 1;
  return `# Written by \`pnpm run stack:up\`; edits are overwritten.
process.roles=broker,controller
node.id=${nodeId}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://${own},CONTROLLER://${host(own)}:${portOf(own) + 1}
advertised.listeners=PLAINTEXT://${own}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${join(nodeDir(ctx, nodeId), 'data')}
auto.create.topics.enable=false
default.replication.factor=${replication}
min.insync.replicas=${minIsr}
offsets.topic.replication.factor=${replication}
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=${replication}
transaction.state.log.min.isr=${minIsr}
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=${replication}
share.coordinator.state.topic.min.isr=${minIsr}
num.partitions=1
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=60000
`;
}

const log4j2 = `# Written by \`pnpm run stack:up\`.
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
logger.kafkaserver.name = kafka.server.KafkaRaftServer
logger.kafkaserver.level = INFO
`;

export function java(ctx: Pick<StackContext, 'cacheDir' | 'stackDir'>, mainClass: string, args: string[], heap: string[]): { command: string; args: string[] } {
  return {
    command: 'java',
    args: [
      ...heap,
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${join(ctx.stackDir, 'kafka-log4j2.properties')}`,
      '-cp',
      `${kafkaLibDir(ctx)}/*`,
      mainClass,
      ...args,
    ],
  };
}

export const kafka: StackService = {
  name: 'kafka',

  async install(ctx) {
    const dir = join(ctx.cacheDir, 'kafka', KAFKA_VERSION);
    if (isInstalled(dir)) return;
    ctx.progress(`kafka: collecting Apache Kafka ${KAFKA_VERSION} jars from Maven Central (first run only)`);
    mkdirSync(dir, { recursive: true });
    await run(
      'kafka',
      'mvn',
      ['-B', '-f', join(repoRoot, 'infra', 'stack', 'kafka', 'pom.xml'), '-Dkafka.version=' + KAFKA_VERSION, 'dependency:copy-dependencies', `-DoutputDirectory=${kafkaLibDir(ctx)}`, '-DincludeScope=runtime'],
      { progress: ctx.progress, progressFilter: /Download(ed|ing)/ },
    );
    markInstalled(dir);
  },

  async start(ctx) {
    mkdirSync(ctx.stackDir, { recursive: true });
    writeFileSync(join(ctx.stackDir, 'kafka-log4j2.properties'), log4j2);
    const shapeFile = join(ctx.stackDir, 'kafka-cluster.json');
    if (existsSync(shapeFile)) {
      const shape = JSON.parse(readFileSync(shapeFile, 'utf8')) as { brokers: number };
      if (shape.brokers !== ctx.brokers) {
        throw new LakestreamError(
          'USAGE',
          `the stack in ${ctx.stackDir} holds a ${shape.brokers}-broker cluster; run \`pnpm run stack:down -- --wipe\` before starting ${ctx.brokers}`,
        );
      }
    }
    const clusterId = existsSync(shapeFile)
      ? (JSON.parse(readFileSync(shapeFile, 'utf8')) as { clusterId: string }).clusterId
      : kafkaClusterId();
    for (let nodeId = 1; nodeId <= ctx.brokers; nodeId++) {
      const dir = nodeDir(ctx, nodeId);
      mkdirSync(dir, { recursive: true });
      const properties = join(dir, 'server.properties');
      writeFileSync(properties, serverProperties(ctx, nodeId));
      if (!existsSync(join(dir, 'data', 'meta.properties'))) {
        const format = java(ctx, 'kafka.tools.StorageTool', ['format', '--ignore-formatted', '-t', clusterId, '-c', properties], ['-Xmx256m']);
        await run('kafka', format.command, format.args);
      }
    }
    writeFileSync(shapeFile, JSON.stringify({ brokers: ctx.brokers, clusterId }) + '\n');
    for (let nodeId = 1; nodeId <= ctx.brokers; nodeId++) {
      if (ctx.nodes && !ctx.nodes.includes(nodeId)) continue;
      const launch = java(ctx, 'kafka.Kafka', [join(nodeDir(ctx, nodeId), 'server.properties')], ['-Xms256m', '-Xmx512m']);
      startDaemon(ctx.stackDir, { name: `kafka-${nodeId}`, ...launch });
    }
  },

  /** Every broker must answer a metadata request on its own and see the whole cluster. */
  async check(ctx) {
    for (const address of brokerAddresses(ctx)) {
      const admin = new Admin({ clientId: 'lakestream-stack', bootstrapBrokers: [address], retries: 0, timeout: 3_000 });
      try {
        const metadata = await admin.metadata({ topics: [] });
        if (metadata.brokers.size !== ctx.brokers) {
          throw new Error(`${address} sees ${metadata.brokers.size} of ${ctx.brokers} brokers`);
        }
      } finally {
        await admin.close().catch(() => {});
      }
    }
  },

  startTimeoutMs: 120_000,
  daemons: (ctx) => Array.from({ length: ctx.brokers }, (_, i) => `kafka-${i + 1}`),
  endpoint: (ctx) => brokerAddresses(ctx).join(','),
};

/** A KRaft cluster id: 16 random bytes, base64url without padding. */
function kafkaClusterId(): string {
  return Buffer.from(randomUUID().replaceAll('-', ''), 'hex').toString('base64url');
}
