import { describeEnv, loadConfig, type Config } from './config.ts';
import { LakestreamError, errorMessage, isNetworkError } from './errors.ts';

/**
 * The command's arguments. `pnpm run x -- --flag` forwards the `--` separator itself, and
 * parseArgs would read everything after it as positionals, so the first one is dropped.
 */
export function cliArgs(argv: string[] = process.argv.slice(2)): string[] {
  const separator = argv.indexOf('--');
  return separator === -1 ? argv : [...argv.slice(0, separator), ...argv.slice(separator + 1)];
}

/** A numeric option that must be a non-negative number, or `fallback` when absent. */
export function nonNegativeOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new LakestreamError('USAGE', `--${name} must be a non-negative number, got ${JSON.stringify(value)}`);
  return n;
}

/** A command's `--help` text, closed by the settings every command reads from the environment. */
export function helpText(text: string): string {
  return `${text.trimEnd()}\n\nEnvironment:\n${describeEnv()}\n`;
}

/**
 * Runs a command's `main`: a failure prints `<name>: <reason>` and ends the process with exit
 * code 1 at once, whatever clients are still open (a native Kafka client still connecting would
 * keep it alive for its whole timeout).
 */
export function runCli(name: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    console.error(`${name}: ${explainFailure(error)}`);
    process.exit(1);
  });
}

const s3CredentialErrors = new Set(['SignatureDoesNotMatch', 'InvalidAccessKeyId', 'AccessDenied', 'InvalidToken', 'ExpiredToken']);

/**
 * One line that names the service and the setting behind a failure that reached the top without
 * that context: a refused connection is matched to the configured endpoint it was aimed at, an S3
 * refusal names the credentials, a malformed command line says where to look.
 */
export function explainFailure(error: unknown): string {
  const chain: Array<Record<string, unknown>> = [];
  for (let e = error as Record<string, unknown> | undefined; e && typeof e === 'object' && chain.length < 8; e = e.cause as Record<string, unknown> | undefined) chain.push(e);
  if (chain.some((e) => typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS'))) {
    return `${errorMessage(error).replace(/\s*\n\s*/g, ' ')} (see --help)`;
  }
  if (error instanceof LakestreamError) return errorMessage(error);
  let config: Config | undefined;
  try {
    config = loadConfig();
  } catch {
    return errorMessage(error);
  }
  const s3Refusal = chain.find((e) => typeof e.name === 'string' && s3CredentialErrors.has(e.name) && e.$metadata);
  if (s3Refusal) {
    return `S3 at ${config.S3_ENDPOINT} refused access key ${config.S3_ACCESS_KEY_ID} (${String(s3Refusal.name)}: ${String(s3Refusal.message)}): check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY`;
  }
  const network = chain.find((e) => isNetworkError(e));
  if (network) {
    const port = Number(network.port);
    const endpoints: Array<[string, string, string]> = [
      ['S3', config.S3_ENDPOINT, 'S3_ENDPOINT'],
      ['Redis', config.REDIS_URL, 'REDIS_URL'],
      ['the schema registry', config.SCHEMA_REGISTRY_URL, 'SCHEMA_REGISTRY_URL'],
    ];
    const portOf = (url: string) => Number(new URL(url).port || (new URL(url).protocol === 'https:' ? 443 : 80));
    const hit = endpoints.find(([, url]) => portOf(url) === port);
    if (hit) return `${hit[0]} at ${hit[1]} is unreachable (${String(network.code)}): is it running? (${hit[2]})`;
  }
  return errorMessage(error);
}
