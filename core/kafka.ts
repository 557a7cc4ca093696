import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KafkaJS } from '@confluentinc/kafka-javascript';
import { Admin } from '@platformatic/kafka';
import type { Config } from './config.ts';
import { LakestreamError } from './errors.ts';

/** Where the brokers are and, on a secured cluster, who signs in and how. */
export type KafkaConnection = Pick<Config, 'KAFKA_BROKERS'> &
  Partial<Pick<Config, 'KAFKA_SECURITY_PROTOCOL' | 'KAFKA_SASL_MECHANISM' | 'KAFKA_SASL_USERNAME' | 'KAFKA_SASL_PASSWORD' | 'KAFKA_CREDENTIALS_DIR' | 'KAFKA_SSL_CA_LOCATION'>>;

/** `host:port` of a KAFKA_BROKERS entry, for the clients that take them apart. */
export function splitHostPort(address: string): { host: string; port: number } {
  return { host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)) };
}

/** The Kafka user that administers the cluster (topics, users, ACLs). */
export const KAFKA_ADMIN_USER = 'admin';

/**
 * The connection signed in as `user`, with the password from KAFKA_CREDENTIALS_DIR, unless the
 * process has one identity for all its clients (KAFKA_SASL_USERNAME) or the cluster is open.
 */
export function asKafkaUser<T extends KafkaConnection>(connection: T, user: string): T {
  if ((connection.KAFKA_SECURITY_PROTOCOL ?? 'plaintext') === 'plaintext' || connection.KAFKA_SASL_USERNAME || !connection.KAFKA_CREDENTIALS_DIR) return connection;
  const file = join(connection.KAFKA_CREDENTIALS_DIR, user);
  if (!existsSync(file)) {
    throw new LakestreamError('CONFIG_INVALID', `KAFKA_CREDENTIALS_DIR: no password file for Kafka user ${user} (expected ${file})`, { context: { variable: 'KAFKA_CREDENTIALS_DIR', user } });
  }
  return { ...connection, KAFKA_SASL_USERNAME: user, KAFKA_SASL_PASSWORD: readFileSync(file, 'utf8').trim() };
}

function signIn(connection: KafkaConnection): { protocol: 'plaintext' | 'sasl_plaintext' | 'sasl_ssl'; mechanism: Config['KAFKA_SASL_MECHANISM']; username: string; password: string } | undefined {
  const protocol = connection.KAFKA_SECURITY_PROTOCOL ?? 'plaintext';
  if (protocol === 'plaintext') return undefined;
  if (!connection.KAFKA_SASL_USERNAME || !connection.KAFKA_SASL_PASSWORD) {
    throw new LakestreamError('CONFIG_INVALID', `KAFKA_SECURITY_PROTOCOL=${protocol} but this client has no Kafka user: set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE), or KAFKA_CREDENTIALS_DIR`, {
      context: { variable: 'KAFKA_SASL_USERNAME' },
    });
  }
  return { protocol, mechanism: connection.KAFKA_SASL_MECHANISM ?? 'SCRAM-SHA-512', username: connection.KAFKA_SASL_USERNAME, password: connection.KAFKA_SASL_PASSWORD };
}

/**
 * Data-path clients (produce, consume, transactions) use librdkafka through
 * @confluentinc/kafka-javascript. Its admin API has no DescribeConfigs / IncrementalAlterConfigs,
 * which declarative topic management needs, so administration uses @platformatic/kafka
 * (pure TypeScript, full admin protocol) instead: see docs/decisions/0002-kafka-clients.md.
 */
export function createKafka(config: KafkaConnection, clientId = 'lakestream'): KafkaJS.Kafka {
  const auth = signIn(config);
  return new KafkaJS.Kafka({
    // librdkafka reports transient states (coordinator loading, broker restarts) as warnings it
    // recovers from by itself; only errors are worth a user's attention.
    kafkaJS: {
      brokers: config.KAFKA_BROKERS,
      clientId,
      logLevel: KafkaJS.logLevel.ERROR,
      ...(auth
        ? {
            sasl: { mechanism: auth.mechanism.toLowerCase(), username: auth.username, password: auth.password } as KafkaJS.SASLOptions,
            ssl: auth.protocol === 'sasl_ssl',
          }
        : {}),
    },
    ...(config.KAFKA_SSL_CA_LOCATION ? { 'ssl.ca.location': config.KAFKA_SSL_CA_LOCATION } : {}),
  });
}

/**
 * Settings every librdkafka client of the platform starts from: where the brokers are, and
 * TCP_NODELAY, which Java clients set and librdkafka does not by default; without it small
 * requests (transaction steps, offset commits) can wait on Nagle's algorithm.
 */
export function librdkafkaBase(config: KafkaConnection): Record<string, string | boolean> {
  const auth = signIn(config);
  return {
    'metadata.broker.list': config.KAFKA_BROKERS.join(','),
    'socket.nagle.disable': true,
    ...(auth
      ? { 'security.protocol': auth.protocol, 'sasl.mechanisms': auth.mechanism, 'sasl.username': auth.username, 'sasl.password': auth.password }
      : {}),
    ...(config.KAFKA_SSL_CA_LOCATION ? { 'ssl.ca.location': config.KAFKA_SSL_CA_LOCATION } : {}),
  };
}

/** Platformatic's connection options for the same sign-in (admin clients). */
export function adminConnection(config: KafkaConnection): { sasl?: { mechanism: Config['KAFKA_SASL_MECHANISM']; username: string; password: string }; tls?: { ca?: Buffer } } {
  const auth = signIn(asKafkaUser(config, KAFKA_ADMIN_USER));
  if (!auth) return {};
  return {
    sasl: { mechanism: auth.mechanism, username: auth.username, password: auth.password },
    ...(auth.protocol === 'sasl_ssl' ? { tls: config.KAFKA_SSL_CA_LOCATION ? { ca: readFileSync(config.KAFKA_SSL_CA_LOCATION) } : {} } : {}),
  };
}

/** An admin client, signed in as the admin user on a secured cluster. */
export function createAdmin(config: KafkaConnection, clientId = 'lakestream-admin'): Admin {
  return new Admin({ clientId, bootstrapBrokers: config.KAFKA_BROKERS, retries: 3, timeout: 10_000, ...adminConnection(config) });
}

/**
 * A KafkaJS-style group consumer reading committed data from the beginning, for tools and tests
 * that inspect a topic (dead letters, outputs). Stream jobs do not use it: they run on the
 * runtime in core/runtime/.
 */
export function createConsumer(config: KafkaConnection, groupId: string): KafkaJS.Consumer {
  return createKafka(config, groupId).consumer({
    kafkaJS: { groupId, fromBeginning: true, autoCommit: false },
    'isolation.level': 'read_committed',
    'queued.max.messages.kbytes': 4 * 1024,
  } as KafkaJS.ConsumerConstructorConfig);
}
