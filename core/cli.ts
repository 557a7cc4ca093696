/**
 * The command's arguments. `pnpm run x -- --flag` forwards the `--` separator itself, and
 * parseArgs would read everything after it as positionals, so the first one is dropped.
 */
export function cliArgs(argv: string[] = process.argv.slice(2)): string[] {
  const separator = argv.indexOf('--');
  return separator === -1 ? argv : [...argv.slice(0, separator), ...argv.slice(separator + 1)];
}
