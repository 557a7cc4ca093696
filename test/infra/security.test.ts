import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import kafkaJavascript, { type LibrdKafkaError } from '@confluentinc/kafka-javascript';
import { kafkaUserOf } from '../../platform/access.ts';
import type { Config } from '../../core/config.ts';
import { asKafkaUser, librdkafkaBase } from '../../core/kafka.ts';
import { applyAccess } from '../../infra/access.ts';
import { saslAddresses, tlsAddresses } from '../../infra/stack/kafka.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { getUserFeatures } from '../../features/online-store.ts';
import { setupPipeline } from '../pipeline/fixture.ts';
import { config, onCleanup, runCliFile, spawnJobs, waitFor } from '../helpers.ts';

/**
 * Least privilege on the stack's SASL/SCRAM listener (ACLs are enforced there; the open
 * PLAINTEXT listener of the test stack is the anonymous super user): each job signs in as its own
 * catalog user, and a user that strays outside its grants is told so at once.
 */
const stack = { config, brokers: config.KAFKA_BROKERS.length };
const credentialsDir = config.KAFKA_CREDENTIALS_DIR!;
const password = (user: string) => readFileSync(join(credentialsDir, user), 'utf8').trim();
const BACKUP_USER = 'transactions-backup-job-user';

/** Env for a process on the SASL listener; each job then signs in as its user from KAFKA_CREDENTIALS_DIR. */
const saslEnv = { KAFKA_BROKERS: saslAddresses(stack).join(','), KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext', KAFKA_CREDENTIALS_DIR: credentialsDir };
const saslConfig: Config = { ...config, KAFKA_BROKERS: saslAddresses(stack), KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext' };

async function securedPipeline(t: Parameters<typeof setupPipeline>[0], label: string) {
  const pipeline = await setupPipeline(t, label);
  await applyAccess(pipeline.names, { admin: pipeline.admin, connection: config, credentialsDir });
  return pipeline;
}

test('security: each job of the transactions pipeline works as its own Kafka user, and no password reaches the logs', { timeout: 420_000 }, async (t) => {
  assert.ok(credentialsDir, 'the stack publishes KAFKA_CREDENTIALS_DIR');
  const { namespace, names, redis, waitForCount } = await securedPipeline(t, 'sec-jobs');
  const jobs = spawnJobs(
    t,
    ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-counts-lake-sink', 'user-transaction-counts-redis-sink'],
    ['--namespace', namespace, '--flush-interval-ms', '1000'],
    saslEnv,
  );
  const producer = await createTransactionsProducer(asKafkaUser(saslConfig, kafkaUserOf('transactions-producer')), { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const next = createTransactionGenerator({ users: 50, seed: 11, spreadDays: 0 });
  const outcome = await producer.send(Array.from({ length: 3_000 }, next));
  assert.equal(outcome.sent, 3_000, 'the producer user may write transactions');

  // four jobs signing in one by one on a loaded machine: the first rows can take a while
  const archived = await waitForCount('transactions', 3_000, 200_000).catch((error: unknown) => {
    console.error(`the jobs' output:\n${jobs.output().slice(-20_000)}`);
    throw error;
  });
  assert.equal(archived, 3_000, 'the backup user archived every transaction');
  assert.equal(await waitForCount('user_transaction_counts', 3_000), 3_000, 'the features user counted every transaction');
  const features = await waitFor('all 50 users in Redis', async () => {
    const found = await getUserFeatures(redis, Array.from({ length: 50 }, (_, i) => i + 1), names.features.userTransactionCounts.redisPrefix);
    const total = found.reduce((sum, f) => sum + Number(f?.total_transactions_count ?? 0), 0);
    return total === 3_000 ? found : undefined;
  });
  assert.equal(features.length, 50);

  assert.equal(await jobs.terminate(), 0);
  // started again with output in its changelog, the features job restores its counts as its own user
  const again = spawnJobs(t, ['transactions-ml-features-job', 'user-transaction-counts-redis-sink'], ['--namespace', namespace], saslEnv);
  const more = await producer.send(Array.from({ length: 500 }, next));
  assert.equal(more.sent, 500);
  assert.equal(await waitForCount('user_transaction_counts', 3_000), 3_000, 'the lake sink is stopped: no new rows yet');
  await waitFor('3,500 counted in Redis after the restore', async () => {
    const found = await getUserFeatures(redis, Array.from({ length: 50 }, (_, i) => i + 1), names.features.userTransactionCounts.redisPrefix);
    return found.reduce((sum, f) => sum + Number(f?.total_transactions_count ?? 0), 0) === 3_500 ? true : undefined;
  });
  assert.match(again.output(), /"msg":"restored state".*"records":[1-9]/, 'the restore read the changelog');
  assert.equal(await again.terminate(), 0);
  const logs = jobs.output() + again.output();
  for (const user of [BACKUP_USER, 'transactions-ml-features-job-user', kafkaUserOf('user-transaction-counts-lake-sink'), kafkaUserOf('user-transaction-counts-redis-sink')]) {
    assert.ok(!logs.includes(password(user)), `${user}'s password is not in the job logs`);
  }
});

test('security: the backup user cannot read another topic or write to transactions, and is told so at once', { timeout: 180_000 }, async (t) => {
  const { namespace, names } = await securedPipeline(t, 'sec-deny');
  const asBackup = { KAFKA_SASL_USERNAME: BACKUP_USER, KAFKA_SASL_PASSWORD_FILE: join(credentialsDir, BACKUP_USER) };

  // another job's group and topic
  const started = Date.now();
  const stray = spawnJobs(t, ['shop-events-lake-sink'], ['--namespace', namespace], { ...saslEnv, ...asBackup });
  const code = await new Promise<number | null>((resolve) => stray.child.once('exit', resolve));
  assert.equal(code, 1, 'the job fails instead of waiting');
  assert.ok(Date.now() - started < 60_000, `failed within a minute (${Date.now() - started} ms)`);
  assert.match(stray.output(), new RegExp(`Kafka user ${BACKUP_USER} is not allowed to read ${names.topic.shopEvents.replace('.', '\\.')} .*AUTHORIZATION_FAILED`));

  // its own group, another topic: the broker refuses the topic itself
  const consumer = new kafkaJavascript.KafkaConsumer(
    { ...librdkafkaBase(asKafkaUser(saslConfig, BACKUP_USER)), 'group.id': names.tables.transactions.group },
    { 'auto.offset.reset': 'earliest' },
  );
  onCleanup(t, () => new Promise<void>((resolve) => consumer.disconnect(() => resolve())));
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.subscribe([names.topic.shopEvents]);
  const refusal = await waitFor('a refusal', () =>
    new Promise<LibrdKafkaError | undefined>((resolve) => consumer.consume(10, (err) => resolve(err ?? undefined))),
    30_000, 200,
  );
  assert.equal(refusal.code, kafkaJavascript.CODES.ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED, refusal.message);

  // writing where only the producer may
  const write = await runCliFile('ingest/cli.ts', ['transactions', '--topic', names.topic.transactions, '--count', '10'], { ...saslEnv, ...asBackup }, 60_000);
  assert.equal(write.status, 1, write.stderr);
  // the producer writes in transactions: the first refusal it meets is for its transactional id
  assert.match(write.stderr, /Topic authorization failed|TOPIC_AUTHORIZATION_FAILED|Transactional Id authorization failed/);
  assert.ok(write.ms < 30_000, `refused within 30 s (${write.ms} ms)`);
});

test('security: a wrong password fails fast with a clear message that does not repeat it', { timeout: 120_000 }, async (t) => {
  const { namespace, names } = await securedPipeline(t, 'sec-password');
  const wrong = 'not-the-password-4711';
  const env = { ...saslEnv, KAFKA_SASL_USERNAME: 'transactions-producer-user', KAFKA_SASL_PASSWORD: wrong };
  const producer = await runCliFile('ingest/cli.ts', ['transactions', '--topic', names.topic.transactions, '--count', '10'], env, 60_000);
  assert.equal(producer.status, 1);
  assert.match(producer.stderr, /rejected the credentials of user transactions-producer-user/);
  assert.ok(producer.ms < 10_000, `failed in ${producer.ms} ms`);
  assert.ok(!`${producer.stdout}${producer.stderr}`.includes(wrong), 'the password is not printed');

  const started = Date.now();
  const job = spawnJobs(t, ['transactions-job-backup'], ['--namespace', namespace], { ...env, KAFKA_SASL_USERNAME: BACKUP_USER });
  const code = await new Promise<number | null>((resolve) => job.child.once('exit', resolve));
  assert.equal(code, 1);
  assert.ok(Date.now() - started < 20_000, `the job failed in ${Date.now() - started} ms`);
  assert.match(job.output(), new RegExp(`rejected the credentials of user ${BACKUP_USER}`));
  assert.ok(!job.output().includes(wrong), 'the password is not logged');
});

test('security: the TLS listener serves clients that verify it against the local CA, and names the fix to those that cannot', { timeout: 120_000 }, async (t) => {
  const { names } = await securedPipeline(t, 'sec-tls');
  const tlsEnv = { KAFKA_BROKERS: tlsAddresses(stack).join(','), KAFKA_SECURITY_PROTOCOL: 'sasl_ssl', KAFKA_CREDENTIALS_DIR: credentialsDir };
  const caFile = join(config.LAKESTREAM_STACK_DIR, 'secrets', 'tls', 'ca.pem');
  const trusted = await runCliFile('ingest/cli.ts', ['transactions', '--topic', names.topic.transactions, '--count', '100'], { ...tlsEnv, KAFKA_SSL_CA_LOCATION: caFile });
  assert.equal(trusted.status, 0, trusted.stderr);
  assert.match(trusted.stderr + trusted.stdout, /sent 100, failed 0/);
  const untrusted = await runCliFile('ingest/cli.ts', ['transactions', '--topic', names.topic.transactions, '--count', '100'], tlsEnv);
  assert.equal(untrusted.status, 1);
  assert.match(untrusted.stderr, /does not trust .*KAFKA_SSL_CA_LOCATION/);
});
