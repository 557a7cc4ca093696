import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import cron from 'node-cron';
import { z } from 'zod';
import { LakestreamError } from './errors.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const hostPort = z
  .string()
  .regex(/^[^\s:,]+:\d{1,5}$/, 'expected host:port');

const url = (protocols: string[]) =>
  z
    .string()
    .url()
    .refine((value) => URL.canParse(value) && protocols.includes(new URL(value).protocol), `expected a ${protocols.join(' or ')} URL`);

const share = z.coerce.number().min(0, 'expected a share from 0 to 1').max(1, 'expected a share from 0 to 1');

/**
 * Every setting the platform reads from the environment. The defaults point at the local stack
 * (`pnpm run stack:up`); set the variables to use your own Kafka, registry, S3 or Redis instead.
 * This schema is the single source for validation, `--help` text and the docker-compose check.
 */
export const envSchema = z
  .object({
    KAFKA_BROKERS: z
      .string()
      .default('127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096')
      .transform((value) => value.split(',').map((broker) => broker.trim()).filter(Boolean))
      .pipe(z.array(hostPort).min(1, 'at least one broker'))
      .describe('Comma-separated Kafka bootstrap brokers (host:port).'),
    KAFKA_SECURITY_PROTOCOL: z
      .enum(['plaintext', 'sasl_plaintext', 'sasl_ssl'])
      .default('plaintext')
      .describe('How clients talk to Kafka: plaintext, sasl_plaintext (SCRAM) or sasl_ssl (SCRAM over TLS).'),
    KAFKA_SASL_MECHANISM: z.enum(['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN']).default('SCRAM-SHA-512').describe('SASL mechanism.'),
    KAFKA_SASL_USERNAME: z.string().min(1).optional().describe('Kafka user of this process (else each job its own user from KAFKA_CREDENTIALS_DIR).'),
    KAFKA_SASL_PASSWORD: z.string().min(1).optional().describe('Its password (prefer KAFKA_SASL_PASSWORD_FILE).'),
    KAFKA_SASL_PASSWORD_FILE: z.string().min(1).optional().describe('File holding the password of KAFKA_SASL_USERNAME.'),
    KAFKA_CREDENTIALS_DIR: z
      .string()
      .min(1)
      .optional()
      .describe("Directory of password files named after Kafka users: each job signs in as its catalog user."),
    KAFKA_SSL_CA_LOCATION: z.string().min(1).optional().describe('PEM file of the CA that signed the brokers\' certificates (sasl_ssl).'),
    SCHEMA_REGISTRY_URL: url(['http:', 'https:'])
      .default('http://127.0.0.1:8081/apis/ccompat/v7')
      .describe('Base URL of a Confluent-compatible Schema Registry API.'),
    S3_ENDPOINT: url(['http:', 'https:'])
      .default('http://127.0.0.1:9000')
      .describe('S3 endpoint of the object store holding the lake (path-style addressing).'),
    S3_REGION: z.string().min(1).default('us-east-1').describe('S3 region.'),
    S3_ACCESS_KEY_ID: z.string().min(1).default('minioadmin').describe('S3 access key.'),
    S3_SECRET_ACCESS_KEY: z.string().min(1).default('minioadmin').describe('S3 secret key.'),
    S3_SECRET_ACCESS_KEY_FILE: z.string().min(1).optional().describe('File holding the S3 secret key (instead of S3_SECRET_ACCESS_KEY).'),
    LAKE_BUCKET: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected a valid S3 bucket name')
      .default('lake')
      .describe('Bucket that holds the lake tables.'),
    ICEBERG_CATALOG_URL: url(['http:', 'https:'])
      .default('http://127.0.0.1:19120/iceberg')
      .describe('Base URL of the Iceberg REST catalog that holds the lake tables (the part before /v1/).'),
    ICEBERG_WAREHOUSE: z.string().min(1).default('lake').describe('The catalog warehouse of the lake tables (its location is s3://<LAKE_BUCKET>/).'),
    ICEBERG_TOKEN: z.string().min(1).optional().describe('Bearer token for the Iceberg catalog, if it requires one.'),
    REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379').describe('Redis URL of the online feature store.'),
    POSTGRES_URL: url(['postgres:', 'postgresql:'])
      .default('postgres://lakestream:lakestream@127.0.0.1:5433/lakestream')
      .describe('PostgreSQL URL, for the product denylist when DENYLIST_STORE=postgres (the local stack runs one here).'),
    DENYLIST_STORE: z
      .enum(['redis', 'postgres'])
      .default('redis')
      .describe('Where the product denylist lives: a Redis hash, or a PostgreSQL table (POSTGRES_URL).'),
    LAKESTREAM_CACHE_DIR: z
      .string()
      .default(join(homedir(), '.cache', 'lakestream'))
      .describe('Where the local stack keeps downloaded and built servers (outside the repo).'),
    LAKESTREAM_STACK_DIR: z
      .string()
      .default(join(repoRoot, '.stack'))
      .describe('Data, logs and pid files of the local stack.'),
    SCHEDULE_BACKFILL: z
      .string()
      .refine((value) => cron.validate(value), 'expected a cron expression')
      .default('30 2 * * *')
      .describe('When the scheduler backfills yesterday (cron, UTC).'),
    SCHEDULE_COMPACTION: z
      .string()
      .refine((value) => cron.validate(value), 'expected a cron expression')
      .default('5 * * * *')
      .describe('When the scheduler compacts closed hours (cron, UTC).'),
    LAKESTREAM_PROFILE: z
      .enum(['throughput', 'latency'])
      .default('throughput')
      .describe('Stream-job tuning: throughput (large batches) or latency (small batches, no linger).'),
    PROMO_BAND: z
      .string()
      .default('0.40-0.70')
      .transform((value) => value.split('-').map((bound) => Number(bound.trim())))
      .pipe(
        z
          .tuple([z.number().min(0).max(1), z.number().min(0).max(1)], 'expected low-high, e.g. 0.40-0.70')
          .refine(([low, high]) => low <= high, 'expected low <= high'),
      )
      .describe('Purchase probabilities (inclusive low-high) of the sessions the promo job offers a discount.'),
    PROMO_DISCOUNT_RATE: share.default(0.1).describe('The discount the promo job offers (0.1 = 10% off the cart).'),
    PROMO_UPLIFT: share
      .default(0.1)
      .describe("How much an offer raises a session's purchase probability in the promo's simulated customer response (0.1 = +10 points)."),
    PROMO_MARGIN_RATE: share.default(0.4).describe('Gross margin on list prices, for the promo economics (the discount comes out of it).'),
    PROMO_SEED: z.coerce.number().int().default(1).describe("Seed of the promo's simulated customer responses: the same seed, the same responses."),
    JOB_OUTAGE_TIMEOUT_S: z.coerce
      .number()
      .int()
      .min(0)
      .default(600)
      .describe('How long a stream job waits out an unreachable Kafka, S3, Redis or registry, retrying with back-off, before it fails (0: for ever).'),
    LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Minimum level of the logs.'),
    LOG_FORMAT: z
      .enum(['auto', 'json', 'pretty'])
      .default('auto')
      .describe('Logs as one JSON object per line, or as readable lines; auto: readable when stderr is a terminal.'),
    GATEWAY_API_KEYS_FILE: z
      .string()
      .min(1)
      .optional()
      .describe('The HTTP gateway requires API keys from this JSON file ({"<key>": {"client": …, "topics": […]}}); unset: open. `--api-keys` overrides it.'),
    FEATURE_SERVER_API_KEYS_FILE: z
      .string()
      .min(1)
      .optional()
      .describe('The feature server requires API keys from this JSON file ({"<key>": {"client": …}}); unset: open. `--api-keys` overrides it.'),
    METRICS_PORT: z.coerce
      .number()
      .int()
      .min(0)
      .max(65535)
      .optional()
      .describe('Stream jobs serve Prometheus metrics on this port at /metrics (0: any free port, logged); unset: none. `--metrics-port` overrides it.'),
  })
  .strict();

export type EnvConfig = z.output<typeof envSchema>;

export interface Config extends EnvConfig {
  /** DuckDB looks for `<dir>/v1.4.4/linux_amd64/httpfs.duckdb_extension` here. */
  duckdbExtensionDir: string;
}

/** Settings whose values never appear in messages or logs. */
const secretSettings = new Set(['KAFKA_SASL_PASSWORD', 'S3_SECRET_ACCESS_KEY', 'POSTGRES_URL']);

/**
 * Reads the platform's settings, refusing any invalid one with its name and the reason.
 * Precedence: `env`, then the endpoints the running local stack published in
 * `<stack dir>/stack.env` (so `stack:up --brokers 1` needs no extra exports), then the defaults.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: { useStackEnv?: boolean } = {}): Config {
  const known = Object.keys(envSchema.shape);
  const given = (source: NodeJS.ProcessEnv) =>
    Object.fromEntries(known.filter((key) => source[key] !== undefined && source[key] !== '').map((key) => [key, source[key]]));
  const fromEnv = given(env);
  const stackDir = String(fromEnv.LAKESTREAM_STACK_DIR ?? join(repoRoot, '.stack'));
  const fromStack = options.useStackEnv === false ? {} : given(readEnvFile(join(stackDir, 'stack.env')));
  // a secret given in the environment, as a value or a file, replaces the stack's either way
  for (const [value, file] of [['S3_SECRET_ACCESS_KEY', 'S3_SECRET_ACCESS_KEY_FILE'], ['KAFKA_SASL_PASSWORD', 'KAFKA_SASL_PASSWORD_FILE']] as const) {
    if (fromEnv[value] !== undefined || fromEnv[file] !== undefined) {
      delete fromStack[value];
      delete fromStack[file];
    }
  }
  const picked: Record<string, unknown> = { ...fromStack, ...fromEnv };
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const [name, entry] = issue.path;
      const which = typeof entry === 'number' ? `entry ${entry + 1}: ` : '';
      const got = secretSettings.has(String(name)) ? 'a value not shown' : JSON.stringify(picked[String(name)]);
      return `${String(name)}: ${which}${issue.message} (got ${got})`;
    });
    throw new LakestreamError('CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`, {
      context: { variables: issue0(parsed.error.issues) },
    });
  }
  return { ...resolveKafkaPassword(parsed.data), duckdbExtensionDir: join(parsed.data.LAKESTREAM_CACHE_DIR, 'duckdb', 'extensions') };
}

/** Reads the secret files (Kafka password, S3 secret) and checks that a SASL protocol has somebody to sign in as. */
function resolveKafkaPassword(config: EnvConfig): EnvConfig {
  const invalid = (variable: string, message: string) => new LakestreamError('CONFIG_INVALID', `invalid configuration:\n  ${variable}: ${message}`, { context: { variables: variable } });
  let password = config.KAFKA_SASL_PASSWORD;
  if (config.KAFKA_SASL_PASSWORD_FILE) {
    if (password) throw invalid('KAFKA_SASL_PASSWORD_FILE', 'set either KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both');
    if (!existsSync(config.KAFKA_SASL_PASSWORD_FILE)) throw invalid('KAFKA_SASL_PASSWORD_FILE', `no such file ${config.KAFKA_SASL_PASSWORD_FILE}`);
    password = readFileSync(config.KAFKA_SASL_PASSWORD_FILE, 'utf8').trim();
    if (!password) throw invalid('KAFKA_SASL_PASSWORD_FILE', `${config.KAFKA_SASL_PASSWORD_FILE} is empty`);
  }
  if (config.KAFKA_SASL_USERNAME && !password) throw invalid('KAFKA_SASL_PASSWORD', `KAFKA_SASL_USERNAME=${config.KAFKA_SASL_USERNAME} needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE`);
  if (password && !config.KAFKA_SASL_USERNAME) throw invalid('KAFKA_SASL_USERNAME', 'a Kafka password is set but no KAFKA_SASL_USERNAME');
  if (config.KAFKA_CREDENTIALS_DIR && !existsSync(config.KAFKA_CREDENTIALS_DIR)) throw invalid('KAFKA_CREDENTIALS_DIR', `no such directory ${config.KAFKA_CREDENTIALS_DIR}`);
  if (config.KAFKA_SECURITY_PROTOCOL !== 'plaintext' && !config.KAFKA_SASL_USERNAME && !config.KAFKA_CREDENTIALS_DIR) {
    throw invalid('KAFKA_SECURITY_PROTOCOL', `${config.KAFKA_SECURITY_PROTOCOL} needs KAFKA_SASL_USERNAME (with a password) or KAFKA_CREDENTIALS_DIR`);
  }
  if (config.KAFKA_SSL_CA_LOCATION && !existsSync(config.KAFKA_SSL_CA_LOCATION)) throw invalid('KAFKA_SSL_CA_LOCATION', `no such file ${config.KAFKA_SSL_CA_LOCATION}`);
  let s3Secret = config.S3_SECRET_ACCESS_KEY;
  if (config.S3_SECRET_ACCESS_KEY_FILE) {
    if (!existsSync(config.S3_SECRET_ACCESS_KEY_FILE)) throw invalid('S3_SECRET_ACCESS_KEY_FILE', `no such file ${config.S3_SECRET_ACCESS_KEY_FILE}`);
    s3Secret = readFileSync(config.S3_SECRET_ACCESS_KEY_FILE, 'utf8').trim();
  }
  return { ...config, KAFKA_SASL_PASSWORD: password, S3_SECRET_ACCESS_KEY: s3Secret };
}

function readEnvFile(file: string): NodeJS.ProcessEnv {
  if (!existsSync(file)) return {};
  const entries = readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#') && line.includes('='))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
  return Object.fromEntries(entries);
}

function issue0(issues: z.core.$ZodIssue[]): string {
  return [...new Set(issues.map((issue) => String(issue.path[0])))].join(',');
}

/** One line per setting, for `--help` output. */
export function describeEnv(): string {
  return Object.entries(envSchema.shape)
    .map(([name, schema]) => `  ${name.padEnd(22)} ${schema.description ?? ''}`)
    .join('\n');
}
