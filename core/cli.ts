import { describeEnv } from './config.ts';
import { LakestreamError, errorMessage } from './errors.ts';

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
    console.error(`${name}: ${errorMessage(error)}`);
    process.exit(1);
  });
}
