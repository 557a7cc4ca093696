import { parseArgs } from 'node:util';
import { z } from 'zod';
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

/**
 * One command-line option: how `--help` shows it and the zod schema that turns the raw text into
 * the value the command reads. The schema's error message is the expectation a bad value is
 * held against ("a positive integer"), so the refusal and the help read the same.
 */
export interface OptionSpec<S extends z.ZodType = z.ZodType> {
  help: string;
  /** The placeholder after the name in `--help` (`--port P`); absent for a flag. */
  value?: string;
  short?: string;
  /** May be given more than once; the schema then checks each value. */
  multiple?: boolean;
  /** The heading `--help` lists it under, for commands whose options apply to different modes. */
  group?: string;
  schema: S;
}

type Options = Record<string, OptionSpec>;
type OptionValue<O extends OptionSpec> = O['multiple'] extends true ? Array<z.output<O['schema']>> : z.output<O['schema']>;
export type OptionValues<O extends Options> = { [K in keyof O]: OptionValue<O[K]> };

export interface CommandSpec<O extends Options> {
  /** The name failures are printed under. */
  name: string;
  /** The usage lines, each without the leading "Usage: ". */
  usage: string[];
  /** What the command does, shown between the usage and the options. */
  description: string;
  options: O;
  /** Whether the command reads positional arguments (a subcommand, ids, SQL text). */
  positionals?: boolean;
  /** Shown after the options: commands, examples, notes; a function when it is read from the catalog. */
  footer?: string | (() => string);
}

export interface Command<O extends Options> {
  readonly name: string;
  /** The full `--help` text. */
  readonly help: string;
  /**
   * The parsed and checked arguments, or undefined after printing the help for `-h`/`--help`.
   * An unknown option or a value its schema refuses throws a USAGE error naming the option.
   */
  parse(argv?: string[]): { values: OptionValues<O>; positionals: string[] } | undefined;
  /** Prints the help to stdout and a reason to stderr, and sets exit code 2: a command line that names no work. */
  refuse(reason?: string): void;
}

/** A string option checked by `parse`, which returns the value or undefined to refuse it as not `expectation`. */
export function expect<T>(expectation: string, parse: (raw: string) => T | undefined): z.ZodType<T, string> {
  return z.string().transform((raw, ctx) => {
    const value = parse(raw);
    if (value === undefined) {
      ctx.issues.push({ code: 'custom', message: expectation, input: raw });
      return z.NEVER;
    }
    return value;
  });
}

const integerText = (raw: string) => (/^\d+$/.test(raw.trim()) ? Number(raw) : undefined);

/** The schemas options are built from; each refuses with the phrase its name promises. */
export const arg = {
  text: () => z.string(),
  nonEmpty: () => expect('a non-empty text', (raw) => (raw.trim() ? raw : undefined)),
  nonNegative: () => expect('a non-negative number', (raw) => (raw.trim() !== '' && Number.isFinite(Number(raw)) && Number(raw) >= 0 ? Number(raw) : undefined)),
  positiveInteger: () => expect('a positive integer', (raw) => { const n = integerText(raw); return n !== undefined && n >= 1 ? n : undefined; }),
  integerAtLeast: (min: number) => expect(`an integer of at least ${min}`, (raw) => { const n = integerText(raw); return n !== undefined && n >= min ? n : undefined; }),
  port: () => expect('a port number (0-65535)', (raw) => { const n = integerText(raw); return n !== undefined && n <= 65535 ? n : undefined; }),
  /** A share that leaves something on both sides: 0 and 1 themselves are refused. */
  fraction: () => expect('a number strictly between 0 and 1', (raw) => (raw.trim() !== '' && Number(raw) > 0 && Number(raw) < 1 ? Number(raw) : undefined)),
  oneOf: <const T extends string>(choices: readonly T[]) => expect(`one of ${choices.join(', ')}`, (raw) => (choices.includes(raw as T) ? (raw as T) : undefined)),
  /** A calendar day: a well-formed but impossible one (2026-02-30) would match no partition, so it is refused too. */
  day: () =>
    expect('a calendar day as YYYY-MM-DD', (raw) => {
      const parsed = /^\d{4}-\d{2}-\d{2}$/.test(raw) ? new Date(`${raw}T00:00:00Z`) : undefined;
      // Date rolls 2026-02-30 over to March 2 instead of failing, so the round trip is what detects it.
      return parsed && !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 10) === raw ? raw : undefined;
    }),
};

/** An option. `value` is the placeholder `--help` shows after its name. */
export function option<S extends z.ZodType>(value: string, help: string, schema: S, extra: { short?: string; group?: string } = {}): OptionSpec<S> {
  return { value, help, schema, ...extra };
}

/** A repeatable option; the command gets every value, checked by `schema`, in order. */
export function repeated<S extends z.ZodType>(value: string, help: string, schema: S): OptionSpec<S> & { multiple: true } {
  return { value, help, schema, multiple: true };
}

/** A boolean switch, false unless given. */
export function flag(help: string, extra: { short?: string; group?: string } = {}): OptionSpec<z.ZodDefault<z.ZodBoolean>> {
  return { help, schema: z.boolean().default(false), ...extra };
}

function defaultOf(schema: z.ZodType): unknown {
  const def = (schema as unknown as { _zod: { def: { type: string; defaultValue?: unknown } } })._zod.def;
  return def.type === 'default' ? def.defaultValue : undefined;
}

const HELP_COLUMNS = 100;

/** Breaks text at spaces into lines of at most `columns` characters (a longer word stays whole). */
function wrap(text: string, columns: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > columns) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

function renderHelp(spec: CommandSpec<Options>): string {
  const rows: Array<{ group: string; left: string; right: string }> = Object.entries(spec.options).map(([name, o]) => {
    const fallback = defaultOf(o.schema);
    // a help text that explains its own default keeps its wording
    const shown = fallback === undefined || fallback === false || fallback === '' || /\bdefault\b/.test(o.help) ? o.help : `${o.help} (default ${String(fallback)})`;
    return { group: o.group ?? 'Options', left: `${o.short ? `-${o.short}, ` : ''}--${name}${o.value ? ` ${o.value}` : ''}`, right: o.multiple ? `${shown}; repeatable` : shown };
  });
  rows.push({ group: rows.at(-1)?.group ?? 'Options', left: '-h, --help', right: 'this text' });
  const width = Math.max(...rows.map((row) => row.left.length)) + 2;
  const usage = spec.usage.map((line, i) => `${i ? '       ' : 'Usage: '}${line}`).join('\n');
  const sections: string[] = [];
  for (const [i, row] of rows.entries()) {
    if (i === 0 || rows[i - 1]!.group !== row.group) sections.push(`${i ? '\n' : ''}${row.group}:`);
    sections.push(`  ${row.left.padEnd(width)}${wrap(row.right, HELP_COLUMNS - 2 - width).join(`\n${' '.repeat(2 + width)}`)}`);
  }
  const footer = typeof spec.footer === 'function' ? spec.footer() : spec.footer;
  return helpText(`${usage}\n\n${spec.description.trim()}\n\n${sections.join('\n')}\n${footer ? `\n${footer.trim()}\n` : ''}`);
}

/**
 * A command line declared once: parseArgs' options, the checks of each value and the `--help`
 * text all come from `spec.options`, so an option cannot be accepted without being documented
 * or documented with a default it does not have.
 */
export function defineCommand<O extends Options>(spec: CommandSpec<O>): Command<O> {
  let rendered: string | undefined;
  const help = () => (rendered ??= renderHelp(spec));
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(spec.options)) {
    parseOptions[name] = { type: o.value ? 'string' : 'boolean', ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  return {
    name: spec.name,
    get help() {
      return help();
    },
    parse(argv = cliArgs()) {
      const parsed = parseArgs({ args: argv, options: parseOptions, allowPositionals: spec.positionals ?? false, strict: true });
      if (parsed.values.help) {
        console.log(help());
        return undefined;
      }
      const values: Record<string, unknown> = {};
      for (const [name, o] of Object.entries(spec.options)) {
        const raw = parsed.values[name] as string | boolean | string[] | undefined;
        const check = (input: unknown) => {
          const result = o.schema.safeParse(input);
          if (result.success) return result.data;
          const expectation = result.error.issues[0]?.message ?? 'valid';
          throw new LakestreamError('USAGE', `--${name} must be ${expectation}, got ${JSON.stringify(input)}`, { context: { option: name } });
        };
        values[name] = o.multiple ? ((raw as string[] | undefined) ?? []).map(check) : check(raw);
      }
      return { values: values as OptionValues<O>, positionals: parsed.positionals };
    },
    refuse(reason) {
      console.log(help());
      if (reason) console.error(`${spec.name}: ${reason}`);
      process.exitCode = 2;
    },
  };
}
