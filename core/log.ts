/**
 * Structured logs: one JSON object per line on stderr, so stdout stays free for a command's
 * actual output (query results, JSON features) and logs can be shipped as they are. On a
 * terminal the same entries are written as readable lines (LOG_FORMAT).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export type LogFormat = 'auto' | 'json' | 'pretty';

let configuredLevel: LogLevel | undefined;
let configuredFormat: LogFormat | undefined;

/** Sets the minimum level (and format) from the validated config; until then the env is read as it is. */
export function setLogLevel(level: LogLevel, format?: LogFormat): void {
  configuredLevel = level;
  configuredFormat = format;
}

function pretty(): boolean {
  const format = configuredFormat ?? (process.env.LOG_FORMAT as LogFormat | undefined) ?? 'auto';
  return format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
}

const colours: Record<LogLevel, string> = { debug: '\x1b[90m', info: '\x1b[36m', warn: '\x1b[33m', error: '\x1b[31m' };

/** `12:00:01.234 INFO  pipeline transactions-job-backup: stats recordsIn=12 …`, coloured on a terminal. */
function prettyLine(entry: Record<string, unknown>): string {
  const { time, level, component, msg, job, ...fields } = entry;
  const colour = process.stderr.isTTY ? colours[level as LogLevel] : '';
  const reset = colour ? '\x1b[0m' : '';
  const rest = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value, (_k, v) => serialise(v))}`)
    .join(' ');
  return `${String(time).slice(11, 23)} ${colour}${String(level).toUpperCase().padEnd(5)}${reset} ${component}${job ? ` ${job}` : ''}: ${msg}${rest ? ` ${rest}` : ''}\n`;
}

function threshold(): number {
  const level = configuredLevel ?? ((process.env.LOG_LEVEL ?? 'info').toLowerCase() as LogLevel);
  return order[level] ?? order.info;
}

function serialise(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { message: value.message, name: value.name, ...(value as object) };
  return value;
}

export function createLogger(component: string, base: Record<string, unknown> = {}): Logger {
  const write = (level: LogLevel, msg: string, fields: Record<string, unknown> = {}) => {
    if (order[level] < threshold()) return;
    const entry = { time: new Date().toISOString(), level, component, msg, ...base, ...fields };
    process.stderr.write(pretty() ? prettyLine(entry) : JSON.stringify(entry, (_key, value) => serialise(value)) + '\n');
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => createLogger(component, { ...base, ...fields }),
  };
}
