import kafkaJavascript from '@confluentinc/kafka-javascript';
import { Connection } from '@platformatic/kafka';
import { LakestreamError } from './errors.ts';
import { adminConnection, type KafkaConnection, splitHostPort } from './kafka.ts';

/*
 * Connection checks every Kafka client of the platform runs before librdkafka would hide the
 * cause (a refused password, an untrusted certificate, no broker at all) behind a timeout:
 * producers, consumers, changelog readers and the admin tools alike.
 */

const unreachableCodes: number[] = [
  kafkaJavascript.CODES.ERRORS.ERR__TRANSPORT,
  kafkaJavascript.CODES.ERRORS.ERR__TIMED_OUT,
  kafkaJavascript.CODES.ERRORS.ERR__ALL_BROKERS_DOWN,
  kafkaJavascript.CODES.ERRORS.ERR__RESOLVE,
];

/**
 * librdkafka's connect() only starts the client; it is the metadata request that follows which
 * needs a broker, and it waits 30 s by default before failing with a message that names no
 * broker. A shorter wait, and an error naming what was tried. Rejected credentials fail at once
 * (verifyCredentials): librdkafka would retry them for ever and report only a timeout.
 */
export async function connectOrExplain(client: kafkaJavascript.Client<string>, connection: KafkaConnection, timeoutMs: number): Promise<void> {
  const brokers = connection.KAFKA_BROKERS.join(',');
  await probeKafka(connection, { requireAnswer: false });
  await new Promise<void>((resolve, reject) => {
    client.connect({ timeout: timeoutMs }, (err) => {
      if (!err) return resolve();
      const unreachable = unreachableCodes.includes(err.code);
      const message = unreachable
        ? `Kafka at ${brokers} is unreachable: ${err.message} (no broker answered within ${timeoutMs / 1000} s)`
        : `Kafka at ${brokers} refused the connection: ${err.message}`;
      reject(new LakestreamError('KAFKA_ERROR', message, { cause: err, retriable: unreachable, context: { brokers } }));
    });
  });
}

const authorizationCodes = new Map<number, string>([
  [kafkaJavascript.CODES.ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED, 'TOPIC_AUTHORIZATION_FAILED'],
  [kafkaJavascript.CODES.ERRORS.ERR_GROUP_AUTHORIZATION_FAILED, 'GROUP_AUTHORIZATION_FAILED'],
  [kafkaJavascript.CODES.ERRORS.ERR_CLUSTER_AUTHORIZATION_FAILED, 'CLUSTER_AUTHORIZATION_FAILED'],
  [kafkaJavascript.CODES.ERRORS.ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'],
]);

/**
 * A broker's refusal to let this user do something, as a non-retriable error naming the user and
 * what it tried; undefined for any other error. librdkafka retries these for ever otherwise.
 */
export function notAuthorized(error: unknown, connection: KafkaConnection, attempted: string): LakestreamError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  const name = typeof code === 'number' ? authorizationCodes.get(code) : undefined;
  if (!name) return undefined;
  const user = connection.KAFKA_SASL_USERNAME ?? 'ANONYMOUS';
  return new LakestreamError('KAFKA_NOT_AUTHORIZED', `Kafka user ${user} is not allowed to ${attempted} (${name}): grant it with \`pnpm run infra:apply\` or check which user this process signs in as`, {
    cause: error,
    context: { user, kafkaError: name },
  });
}

const verifiedUsers = new Set<string>();
const untrustedCertificateCodes = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']);

/**
 * Signs in to one broker with a plain TypeScript client: once per user and process before
 * librdkafka connects (`requireAnswer: false`), and before admin tools start. librdkafka only logs
 * a rejected password and keeps trying; its connect() then blocks a worker thread until the
 * metadata timeout, which even holds up the process's exit. On TLS it also checks the brokers'
 * certificate. Brokers that do not answer are skipped: unless an answer is required, being
 * unreachable is librdkafka's to report (and to wait out).
 */
export async function probeKafka(connection: KafkaConnection, options: { requireAnswer: boolean }): Promise<void> {
  const user = connection.KAFKA_SASL_USERNAME;
  const secured = (connection.KAFKA_SECURITY_PROTOCOL ?? 'plaintext') !== 'plaintext';
  if (!options.requireAnswer && (!secured || !user || verifiedUsers.has(user))) return;
  for (const broker of connection.KAFKA_BROKERS) {
    // adminConnection signs in as the connection's own user when one is set
    const probe = new Connection('lakestream-probe', { connectTimeout: 3_000, requestTimeout: 5_000, ...adminConnection(connection) });
    try {
      await probe.connect(splitHostPort(broker).host, splitHostPort(broker).port);
      if (user) verifiedUsers.add(user);
      return;
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      if (cause?.code === 'PLT_KFK_AUTHENTICATION') throw authenticationFailed(connection, error);
      if (cause?.code && untrustedCertificateCodes.has(cause.code)) {
        throw new LakestreamError('KAFKA_ERROR', `Kafka at ${broker} presented a TLS certificate this client does not trust (${cause.message}): set KAFKA_SSL_CA_LOCATION to the CA that signed it`, {
          cause: error,
          context: { variable: 'KAFKA_SSL_CA_LOCATION' },
        });
      }
    } finally {
      await probe.close().catch(() => {});
    }
  }
  if (options.requireAnswer) {
    throw new LakestreamError('KAFKA_ERROR', `Kafka at ${connection.KAFKA_BROKERS.join(',')} is unreachable: no broker answered within 3 s (KAFKA_BROKERS)`, {
      retriable: true,
      context: { variable: 'KAFKA_BROKERS' },
    });
  }
}

function authenticationFailed(connection: KafkaConnection, cause: unknown): LakestreamError {
  return new LakestreamError(
    'KAFKA_AUTH_FAILED',
    `Kafka at ${connection.KAFKA_BROKERS.join(',')} rejected the credentials of user ${connection.KAFKA_SASL_USERNAME} (${connection.KAFKA_SASL_MECHANISM ?? 'SCRAM-SHA-512'}): check its password (KAFKA_SASL_PASSWORD(_FILE) or KAFKA_CREDENTIALS_DIR)`,
    { cause, context: { user: connection.KAFKA_SASL_USERNAME ?? '' } },
  );
}
