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
 * Runs a command's `main`: a failure prints `<name>: <reason>` and sets exit code 1.
 * `exitOnError` ends the process at once, for commands whose open clients would keep it alive.
 */
export function runCli(name: string, main: () => Promise<void>, options: { exitOnError?: boolean } = {}): void {
  main().catch((error: unknown) => {
    console.error(`${name}: ${errorMessage(error)}`);
    if (options.exitOnError) process.exit(1);
    process.exitCode = 1;
  });
}
