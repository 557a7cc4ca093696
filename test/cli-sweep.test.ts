import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { catalog } from '../platform/catalog.ts';
import { createAdmin } from '../core/kafka.ts';
import { createRegistry } from '../core/registry.ts';
import { applyInfra } from '../infra/apply.ts';
import { saslAddresses } from '../infra/stack/kafka.ts';
import { topicsFor } from '../infra/topics.ts';
import { config, runCliFile, uniqueName, unusedPort } from './helpers.ts';

/**
 * Every command line, fed malformed values, unreachable servers and wrong credentials: each one
 * answers with one line that names the option, setting or server and what to do, exits non-zero,
 * shows no stack trace, and does not sit out a long timeout.
 */
interface Case {
  cli: string;
  args: string[];
  env?: Record<string, string>;
  says: RegExp;
  /** Exit status (default 1). */
  status?: number;
  withinMs?: number;
}

const dead = `127.0.0.1:${await unusedPort()}`;
// a namespace with its topics and schemas, so the producer gets as far as Kafka
const namespace = uniqueName('sweep');
const transactionsTopic = catalog(namespace).topic.transactions;
const admin = createAdmin(config, 'lakestream-test');
await applyInfra(topicsFor(namespace), { admin, registry: createRegistry(config), registryUrl: config.SCHEMA_REGISTRY_URL });
after(async () => {
  await admin.deleteTopics({ topics: topicsFor(namespace).map((spec) => spec.name) }).catch(() => {});
  await admin.close();
});
const sasl = saslAddresses({ config, brokers: config.KAFKA_BROKERS.length }).join(',');
const wrongKafkaPassword = { KAFKA_BROKERS: sasl, KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext', KAFKA_SASL_USERNAME: 'admin', KAFKA_SASL_PASSWORD: 'not-it-0815' };

const cases: Record<string, Case> = {
  'producer: a count that is not a number': { cli: 'ingest/cli.ts', args: ['transactions', '--count', 'abc'], says: /--count must be a non-negative number, got "abc"/ },
  'producer: a negative rate': { cli: 'ingest/cli.ts', args: ['transactions', '--rate', '-5'], says: /Option '--rate' argument is ambiguous.*\(see --help\)/ },
  'producer: an unknown option': { cli: 'ingest/cli.ts', args: ['transactions', '--bogus'], says: /Unknown option '--bogus'/ },
  'producer: Kafka unreachable': { cli: 'ingest/cli.ts', args: ['transactions', '--topic', transactionsTopic, '--count', '5'], env: { KAFKA_BROKERS: dead }, says: new RegExp(`Kafka at ${dead} is unreachable`), withinMs: 20_000 },
  'producer: registry unreachable': { cli: 'ingest/cli.ts', args: ['transactions', '--count', '5'], env: { SCHEMA_REGISTRY_URL: `http://${dead}` }, says: /schema registry at .* is unreachable/ },
  'producer: a topic without a schema': { cli: 'ingest/cli.ts', args: ['transactions', '--topic', 'no.such.topic', '--count', '5'], says: /no schema registered for no\.such\.topic-value.*infra:apply/ },
  'producer: a wrong Kafka password': { cli: 'ingest/cli.ts', args: ['transactions', '--topic', transactionsTopic, '--count', '5'], env: wrongKafkaPassword, says: /rejected the credentials of user admin/ },
  'shop producer: users not a number': { cli: 'ingest/cli.ts', args: ['shop-events', '--users', 'x'], says: /--users must be a positive integer, got "x"/ },
  'job: an unknown job': { cli: 'pipeline/cli.ts', args: ['nosuchjob'], says: /unknown job nosuchjob; jobs: transactions-job-backup/ },
  'job: an empty instance': { cli: 'pipeline/cli.ts', args: ['promo', '--instance', ''], says: /--instance must be letters/ },
  'job: a zero stats interval': { cli: 'pipeline/cli.ts', args: ['promo', '--stats-interval-ms', '0'], says: /--stats-interval-ms must be a positive integer, got "0"/ },
  'dashboard: a port that is not a number': { cli: 'dashboard/cli.ts', args: ['--port', 'web'], says: /--port must be a port number \(0-65535\), got "web"/ },
  'dashboard: an interval too short': { cli: 'dashboard/cli.ts', args: ['--interval-ms', '5'], says: /--interval-ms must be an integer of at least 200, got "5"/ },
  'dashboard: an unknown option': { cli: 'dashboard/cli.ts', args: ['--bogus'], says: /Unknown option '--bogus'.*\(see --help\)/ },
  'gateway: a port that is not a number': { cli: 'gateway/cli.ts', args: ['--port', 'http'], says: /--port must be a port number \(0-65535\), got "http"/ },
  'gateway: a missing API keys file': { cli: 'gateway/cli.ts', args: ['--api-keys', '/nonexistent/keys.json'], says: /API keys \(--api-keys \/ GATEWAY_API_KEYS_FILE\) from \/nonexistent\/keys\.json: ENOENT/ },
  'gateway: Kafka unreachable': { cli: 'gateway/cli.ts', args: ['--port', '0'], env: { KAFKA_BROKERS: dead }, says: new RegExp(`Kafka at ${dead} is unreachable`), withinMs: 25_000 },
  'feature-server: a max age without seconds': { cli: 'features/server-cli.ts', args: ['--max-age', 'user_transaction_counts'], says: /--max-age must be VIEW=SECONDS, got "user_transaction_counts"/ },
  'feature-server: a max age for no view': { cli: 'features/server-cli.ts', args: ['--max-age', 'nope=60'], says: /--max-age nope=60: no feature view nope \(views: user_transaction_counts/ },
  'feature-server: a missing API keys file': { cli: 'features/server-cli.ts', args: ['--api-keys', '/nonexistent/keys.json'], says: /API keys \(--api-keys \/ FEATURE_SERVER_API_KEYS_FILE\) from \/nonexistent\/keys\.json: ENOENT/ },
  'bench:gateway: a zero duration': { cli: 'benchmarks/gateway.ts', args: ['--seconds', '0'], says: /--seconds must be a positive integer, got "0"/ },
  'denylist: no command': { cli: 'processors/product-filter/denylist-cli.ts', args: [], says: /expected add, remove or list \(see --help\)/ },
  'denylist: a product id that is not a number': { cli: 'processors/product-filter/denylist-cli.ts', args: ['add', 'lipstick'], says: /a product id is a non-negative 64-bit integer, got "lipstick"/ },
  'denylist: a reason on remove': { cli: 'processors/product-filter/denylist-cli.ts', args: ['remove', '5', '--reason', 'x'], says: /--reason goes with add, not remove/ },
  'denylist: Redis unreachable': { cli: 'processors/product-filter/denylist-cli.ts', args: ['list'], env: { REDIS_URL: `redis://${dead}` }, says: /Redis at .* is unreachable/ },
  'denylist: PostgreSQL unreachable': {
    cli: 'processors/product-filter/denylist-cli.ts',
    args: ['list'],
    env: { DENYLIST_STORE: 'postgres', POSTGRES_URL: `postgres://lakestream:not-shown@${dead}/lakestream` },
    says: new RegExp(`PostgreSQL at postgres://lakestream:\\*\\*\\*@${dead}/lakestream is unreachable`),
  },
  'denylist: a wrong PostgreSQL password': {
    cli: 'processors/product-filter/denylist-cli.ts',
    args: ['add', '5'],
    env: { DENYLIST_STORE: 'postgres', POSTGRES_URL: config.POSTGRES_URL.replace(/:[^:@/]*@/, ':wrong-password@') },
    says: /PostgreSQL at postgres:\/\/lakestream:\*\*\*@\S+ refused the sign-in: password authentication failed for user "lakestream"/,
  },
  'denylist: an unknown store': { cli: 'processors/product-filter/denylist-cli.ts', args: ['list'], env: { DENYLIST_STORE: 'mysql' }, says: /DENYLIST_STORE: .*"redis"\|"postgres" \(got "mysql"\)/ },
  'job: a metrics port that is not a number': { cli: 'pipeline/cli.ts', args: ['promo', '--metrics-port', 'http'], says: /--metrics-port must be a port number \(0-65535\), got "http"/ },
  'job: a malformed METRICS_PORT': { cli: 'pipeline/cli.ts', args: ['promo'], env: { METRICS_PORT: '99999' }, says: /METRICS_PORT/ },
  'job: Kafka unreachable': { cli: 'pipeline/cli.ts', args: ['transactions-job-backup', '--namespace', 'sweep'], env: { KAFKA_BROKERS: dead }, says: new RegExp(`Kafka at ${dead} is unreachable`), withinMs: 25_000 },
  'job: a wrong Kafka password': { cli: 'pipeline/cli.ts', args: ['promo', '--namespace', 'sweep'], env: wrongKafkaPassword, says: /rejected the credentials of user admin/ },
  'sql: a missing file': { cli: 'sql/cli.ts', args: ['-f', 'nope.sql'], says: /--file: no such file nope\.sql/ },
  'sql: an unknown format': { cli: 'sql/cli.ts', args: ['SELECT 1', '--format', 'xml'], says: /--format must be one of table, csv, json, got "xml"/ },
  'sql: a time without its zone': { cli: 'sql/cli.ts', args: ['SELECT 1', '--as-of', '2026-12-03 15:00'], says: /--as-of must be a time with its zone \(2026-12-03T15:00:00Z/ },
  'sql: S3 unreachable': { cli: 'sql/cli.ts', args: ['SELECT count(*) FROM transactions'], env: { S3_ENDPOINT: `http://${dead}` }, says: /S3 at .* is unreachable \(ECONNREFUSED\).*S3_ENDPOINT/, withinMs: 20_000 },
  'sql: Iceberg catalog unreachable': { cli: 'sql/cli.ts', args: ['SELECT count(*) FROM transactions'], env: { ICEBERG_CATALOG_URL: `http://${dead}/iceberg` }, says: /the Iceberg catalog at .* is unreachable \(ECONNREFUSED\): is it running\? \(ICEBERG_CATALOG_URL\)/, withinMs: 20_000 },
  'sql: a wrong S3 secret': { cli: 'sql/cli.ts', args: ['SELECT count(*) FROM transactions'], env: { S3_SECRET_ACCESS_KEY: 'wrong-secret' }, says: /S3 at .* refused access key minioadmin \(SignatureDoesNotMatch.*check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY/ },
  'features: a user id that is not a number': { cli: 'features/cli.ts', args: ['user', 'abc'], says: /user ids are non-negative integers, got "abc"/ },
  'features: Redis unreachable': { cli: 'features/cli.ts', args: ['user', '1'], env: { REDIS_URL: `redis://${dead}` }, says: /Redis at .* is unreachable/ },
  'features: a malformed REDIS_URL': { cli: 'features/cli.ts', args: ['user', '1'], env: { REDIS_URL: 'foo' }, says: /invalid configuration:\n {2}REDIS_URL: .*\(got "foo"\)/ },
  'backfill: an impossible day': { cli: 'backfill/cli.ts', args: ['--from', '2026-13-45'], says: /--from must be a calendar day as YYYY-MM-DD, got "2026-13-45"/ },
  'backfill: a shard outside the range': { cli: 'backfill/cli.ts', args: ['--shard', '3/2'], says: /--shard must be I\/N with 0 <= I < N, got "3\/2"/ },
  'backfill: S3 unreachable': { cli: 'backfill/cli.ts', args: ['--from', '2026-01-01', '--to', '2026-01-01'], env: { S3_ENDPOINT: `http://${dead}` }, says: /S3 at .* is unreachable/, withinMs: 20_000 },
  'compact: an unknown table': { cli: 'backfill/compact-cli.ts', args: ['--table', 'nope', '--dt', '2026-01-01'], says: /--table must be one of transactions/ },
  'compact: hour 25': { cli: 'backfill/compact-cli.ts', args: ['--table', 'transactions', '--dt', '2026-01-01', '--hour', '25'], says: /--hour must be two digits 00-23, got "25"/ },
  'train: a holdout above 1': { cli: 'ml/train-cli.ts', args: ['--holdout', '2'], says: /--holdout must be a number strictly between 0 and 1, got "2"/ },
  'train: S3 unreachable': { cli: 'ml/train-cli.ts', args: [], env: { S3_ENDPOINT: `http://${dead}` }, says: /S3 at .* is unreachable/, withinMs: 20_000 },
  'infra:apply: Kafka unreachable': { cli: 'infra/apply-cli.ts', args: [], env: { KAFKA_BROKERS: dead }, says: new RegExp(`Kafka at ${dead} is unreachable: no broker answered`) },
  'infra:apply: a wrong admin password': { cli: 'infra/apply-cli.ts', args: [], env: wrongKafkaPassword, says: /rejected the credentials of user admin/ },
  'lake: an unknown table': { cli: 'sinks/lake/lake-cli.ts', args: ['verify', '--table', 'nope'], says: /--table must be one of transactions, .* got "nope"/ },
  'lake: Kafka unreachable': { cli: 'sinks/lake/lake-cli.ts', args: ['verify'], env: { KAFKA_BROKERS: dead }, says: /Kafka at .* is unreachable/, withinMs: 20_000 },
  'sink:reset: not a lake sink': { cli: 'sinks/lake/reset-cli.ts', args: ['promo'], says: /promo is not a lake sink; lake sinks: transactions-job-backup/ },
  'scheduler: a malformed cron setting': { cli: 'backfill/scheduler-cli.ts', args: [], env: { SCHEDULE_BACKFILL: '99 99' }, says: /SCHEDULE_BACKFILL: expected a cron expression \(got "99 99"\)/ },
  'chaos: an unknown scenario': { cli: 'infra/chaos/cli.ts', args: ['--only', 'nosuch'], says: /unknown scenario nosuch; scenarios: broker/ },
  'loadtest: Kafka unreachable': { cli: 'benchmarks/loadtest.ts', args: ['--topic', 't', '--num-records', '10', '--record-size', '10'], env: { KAFKA_BROKERS: dead }, says: /Kafka at .* is unreachable/, withinMs: 20_000 },
  'bench: an unknown section': { cli: 'benchmarks/bench.ts', args: ['--only', 'nosuch'], says: /unknown section nosuch; sections: producer/, status: 2 },
  'stack: two brokers': { cli: 'infra/stack/cli.ts', args: ['up', '--brokers', '2'], says: /--brokers must be 1 or 3, got "2"/ },
  'demo: an option it does not take': { cli: 'scripts/demo.ts', args: ['--bogus'], says: /demo: takes no options, got --bogus/, status: 2 },
};

for (const [name, c] of Object.entries(cases)) {
  test(`bad input: ${name}`, { timeout: 60_000 }, async () => {
    const result = await runCliFile(c.cli, c.args, { LOG_LEVEL: 'warn', ...c.env }, 45_000);
    const output = `${result.stdout}${result.stderr}`;
    assert.equal(result.status, c.status ?? 1, output);
    assert.match(result.stderr, c.says);
    assert.doesNotMatch(output, /\n\s+at .+:\d+:\d+\)?\n/, 'no stack trace');
    assert.ok(!['not-it-0815', 'wrong-secret', 'not-shown', 'wrong-password'].some((secret) => output.includes(secret)), 'no secret repeated');
    assert.ok(result.ms < (c.withinMs ?? 10_000), `answered in ${result.ms} ms`);
  });
}

test('bad input: every command is in the sweep', () => {
  const scripts = Object.values((JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);
  const files = new Set(scripts.flatMap((script) => [...script.matchAll(/(?:tsx|--import tsx) ([\w/.-]+\.ts)/g)].map((m) => m[1]!)));
  const swept = new Set(Object.values(cases).map((c) => c.cli));
  const exempt = new Set(['benchmarks/pipeline.ts', 'benchmarks/backfill.ts']);
  assert.deepEqual([...files].filter((file) => !swept.has(file) && !exempt.has(file)).sort(), []);
});
