import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Admin } from '@platformatic/kafka';
import { repoRoot } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { adminConnection, KAFKA_ADMIN_USER, type KafkaConnection } from '../../core/kafka.ts';
import { ensurePassword, upsertScramUsers } from '../access.ts';
import { type StackContext, type StackService, portOf } from './context.ts';
import { isInstalled, markInstalled, run } from './install.ts';
import { runningPid, startDaemon } from './processes.ts';
import { ensureLocalCertificates, type LocalCertificates } from './tls.ts';

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

const hostOf = (address: string) => address.slice(0, address.lastIndexOf(':'));
const shifted = (address: string, by: number) => `${hostOf(address)}:${portOf(address) + by}`;

/** Each node's SASL/SCRAM listener: its KAFKA_BROKERS port + 100. */
export const saslAddresses = (ctx: Pick<StackContext, 'config' | 'brokers'>) => brokerAddresses(ctx).map((address) => shifted(address, 100));
/** Each node's SASL/SCRAM-over-TLS listener: its KAFKA_BROKERS port + 200. */
export const tlsAddresses = (ctx: Pick<StackContext, 'config' | 'brokers'>) => brokerAddresses(ctx).map((address) => shifted(address, 200));

/** Where the local stack keeps its secrets: Kafka users' passwords (KAFKA_CREDENTIALS_DIR), TLS material. */
export const kafkaUsersDir = (ctx: Pick<StackContext, 'stackDir'>) => join(ctx.stackDir, 'secrets', 'kafka-users');
const secretsDir = (ctx: Pick<StackContext, 'stackDir'>) => join(ctx.stackDir, 'secrets');

interface Secrets {
  admin: string;
  controller: string;
  keystore: string;
  certificates: LocalCertificates;
}

async function stackSecrets(ctx: StackContext): Promise<Secrets> {
  const keystore = ensurePassword(secretsDir(ctx), 'broker-keystore').password;
  return {
    admin: ensurePassword(kafkaUsersDir(ctx), KAFKA_ADMIN_USER).password,
    controller: ensurePassword(secretsDir(ctx), 'controller').password,
    keystore,
    certificates: await ensureLocalCertificates(join(secretsDir(ctx), 'tls'), keystore),
  };
}

/**
 * Listeners: the open PLAINTEXT one on the KAFKA_BROKERS ports (not in --secure mode), SASL/SCRAM
 * on port + 100 and SASL/SCRAM over TLS on port + 200, both with ACLs (StandardAuthorizer).
 * In the open stack the anonymous PLAINTEXT user is a super user, so the open door stays as
 * convenient as before while the SASL listeners enforce each user's ACLs. --secure closes the
 * door: brokers talk to each other as the admin over SCRAM and to the controllers with PLAIN,
 * and nobody is anonymous.
 */
function listenerProperties(ctx: StackContext, nodeId: number, secrets: Secrets): string {
  const own = brokerAddresses(ctx)[nodeId - 1]!;
  const sasl = saslAddresses(ctx)[nodeId - 1]!;
  const tls = tlsAddresses(ctx)[nodeId - 1]!;
  const controller = shifted(own, 1);
  const scram = (user: string, password: string) => `org.apache.kafka.common.security.scram.ScramLoginModule required username="${user}" password="${password}";`;
  const common = `sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=${secrets.certificates.keystoreFile}
listener.name.sasl_ssl.ssl.keystore.password=${secrets.keystore}
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=${scram(KAFKA_ADMIN_USER, secrets.admin)}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${scram(KAFKA_ADMIN_USER, secrets.admin)}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
controller.listener.names=CONTROLLER
`;
  if (!ctx.secure) {
    return `${common}listeners=PLAINTEXT://${own},SASL_PLAINTEXT://${sasl},SASL_SSL://${tls},CONTROLLER://${controller}
advertised.listeners=PLAINTEXT://${own},SASL_PLAINTEXT://${sasl},SASL_SSL://${tls}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
super.users=User:${KAFKA_ADMIN_USER};User:ANONYMOUS
`;
  }
  const plain = `org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${secrets.controller}" user_controller="${secrets.controller}";`;
  return `${common}listeners=SASL_PLAINTEXT://${sasl},SASL_SSL://${tls},CONTROLLER://${controller}
advertised.listeners=SASL_PLAINTEXT://${sasl},SASL_SSL://${tls}
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=${plain}
super.users=User:${KAFKA_ADMIN_USER};User:controller
`;
}

/** Small, quiet brokers for a 2-core machine; the replication settings follow the cluster size. */
function serverProperties(ctx: StackContext, nodeId: number, secrets: Secrets): string {
  const addresses = brokerAddresses(ctx);
  const voters = addresses.map((address, i) => `${i + 1}@${shifted(address, 1)}`).join(',');
  const replication = Math.min(3, ctx.brokers);
  const minIsr = ctx.brokers >= 3 ? 2 : 1;
  return `# Written by \`pnpm run stack:up\`; edits are overwritten. Holds secrets: readable by the owner only.
process.roles=broker,controller
node.id=${nodeId}
controller.quorum.voters=${voters}
${listenerProperties(ctx, nodeId, secrets)}log.dirs=${join(nodeDir(ctx, nodeId), 'data')}
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
    const shape = existsSync(shapeFile) ? (JSON.parse(readFileSync(shapeFile, 'utf8')) as { brokers: number; clusterId: string }) : undefined;
    if (shape && shape.brokers !== ctx.brokers) {
      throw new LakestreamError(
        'USAGE',
        `the stack in ${ctx.stackDir} holds a ${shape.brokers}-broker cluster; run \`pnpm run stack:down -- --wipe\` before starting ${ctx.brokers}`,
      );
    }
    const running = kafka.daemons(ctx).filter((name) => runningPid(ctx.stackDir, name) !== undefined);
    if (running.length && kafkaMode(ctx.stackDir) !== (ctx.secure ? 'secure' : 'open')) {
      throw new LakestreamError('USAGE', `Kafka runs ${kafkaMode(ctx.stackDir)}; run \`pnpm run stack:down\` before \`stack:up${ctx.secure ? ' -- --secure' : ''}\``);
    }
    const clusterId = shape?.clusterId ?? kafkaClusterId();
    const secrets = await stackSecrets(ctx);
    for (let nodeId = 1; nodeId <= ctx.brokers; nodeId++) {
      const dir = nodeDir(ctx, nodeId);
      mkdirSync(dir, { recursive: true });
      const properties = join(dir, 'server.properties');
      // written beside and renamed: the file holds secrets and is never readable by others, not even briefly
      writeFileSync(`${properties}.new`, serverProperties(ctx, nodeId, secrets), { mode: 0o600 });
      chmodSync(`${properties}.new`, 0o600);
      renameSync(`${properties}.new`, properties);
      if (!existsSync(join(dir, 'data', 'meta.properties'))) {
        // the admin exists from the start, so a --secure cluster's brokers can sign in to each other;
        // its password goes through a Java argument file, not the command line (ps, error messages)
        const format = java(ctx, 'kafka.tools.StorageTool', ['format', '--ignore-formatted', '-t', clusterId, '-c', properties, '--add-scram', `SCRAM-SHA-512=[name=${KAFKA_ADMIN_USER},password=${secrets.admin}]`], ['-Xmx256m']);
        const argFile = join(secretsDir(ctx), `format-${nodeId}.args`);
        writeFileSync(argFile, format.args.map((arg) => `"${arg.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join('\n'), { mode: 0o600 });
        try {
          await run('kafka', format.command, [`@${argFile}`]);
        } finally {
          rmSync(argFile, { force: true });
        }
      }
    }
    writeFileSync(shapeFile, JSON.stringify({ brokers: ctx.brokers, clusterId }) + '\n');
    if (!(ctx.nodes && running.length)) writeFileSync(join(ctx.stackDir, 'kafka-mode'), ctx.secure ? 'secure\n' : 'open\n');
    for (let nodeId = 1; nodeId <= ctx.brokers; nodeId++) {
      if (ctx.nodes && !ctx.nodes.includes(nodeId)) continue;
      const launch = java(ctx, 'kafka.Kafka', [join(nodeDir(ctx, nodeId), 'server.properties')], ['-Xms256m', '-Xmx512m']);
      startDaemon(ctx.stackDir, { name: `kafka-${nodeId}`, ...launch });
    }
  },

  /** Every broker must answer a metadata request on its own and see the whole cluster. */
  async check(ctx) {
    const connection = stackKafkaConnection(ctx);
    for (const address of connection.KAFKA_BROKERS) {
      const admin = new Admin({ clientId: 'lakestream-stack', bootstrapBrokers: [address], retries: 0, timeout: 3_000, ...adminConnection(connection) });
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

  /** A stack formatted before it had users gets its admin through the open door. */
  async ready(ctx) {
    if (ctx.secure) return;
    await upsertScramUsers(stackKafkaConnection(ctx), [{ user: KAFKA_ADMIN_USER, password: ensurePassword(kafkaUsersDir(ctx), KAFKA_ADMIN_USER).password }]);
  },

  startTimeoutMs: 120_000,
  daemons: (ctx) => Array.from({ length: ctx.brokers }, (_, i) => `kafka-${i + 1}`),
  endpoint: (ctx) => (ctx.secure ? `${saslAddresses(ctx).join(',')} (SASL/SCRAM; TLS on ${tlsAddresses(ctx).join(',')})` : `${brokerAddresses(ctx).join(',')} (SASL/SCRAM on ${saslAddresses(ctx).join(',')}, TLS on ${tlsAddresses(ctx).join(',')})`),
};

/** The mode Kafka was last started in. */
export function kafkaMode(stackDir: string): 'open' | 'secure' {
  const file = join(stackDir, 'kafka-mode');
  return existsSync(file) && readFileSync(file, 'utf8').trim() === 'secure' ? 'secure' : 'open';
}

/**
 * How clients reach the stack's Kafka: the open listeners, or in --secure mode the SASL ones with
 * the stack's user passwords (each job signs in as its own user; tools as the admin).
 */
export function stackKafkaConnection(ctx: Pick<StackContext, 'config' | 'brokers' | 'stackDir' | 'secure'>): KafkaConnection {
  if (!ctx.secure) return { KAFKA_BROKERS: brokerAddresses(ctx) };
  return { KAFKA_BROKERS: saslAddresses(ctx), KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_CREDENTIALS_DIR: kafkaUsersDir(ctx) };
}

/** A KRaft cluster id: 16 random bytes, base64url without padding. */
function kafkaClusterId(): string {
  return Buffer.from(randomUUID().replaceAll('-', ''), 'hex').toString('base64url');
}
