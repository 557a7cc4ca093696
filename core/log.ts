/**
 * Structured logs: one JSON object per line on stderr, so stdout stays free for a command's
 * actual output (query results, JSON features) and logs can be shipped as they are.
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

let configuredLevel: LogLevel | undefined;

/** Sets the minimum level from the validated config; until then LOG_LEVEL is read as it is. */
export function setLogLevel(level: LogLevel): void {
  configuredLevel = level;
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
    process.stderr.write(JSON.stringify(entry, (_key, value) => serialise(value)) + '\n');
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => createLogger(component, { ...base, ...fields }),
  };
}
