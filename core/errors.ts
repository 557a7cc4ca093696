/**
 * The one error type of the project. `code` is stable (callers and tests switch on it), `retriable`
 * tells the retry helper whether another attempt can succeed, and `context` carries whatever
 * locates the failure (topic, partition, offset, key, field, service, path).
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'STACK_INSTALL_FAILED'
  | 'STACK_START_TIMEOUT'
  | 'KAFKA_ERROR'
  | 'KAFKA_AUTH_FAILED'
  | 'KAFKA_NOT_AUTHORIZED'
  | 'TOPIC_RESET'
  | 'REGISTRY_ERROR'
  | 'SCHEMA_INCOMPATIBLE'
  | 'RECORD_INVALID'
  | 'RECORD_UNDECODABLE'
  | 'DELIVERY_FAILED'
  | 'S3_ERROR'
  | 'ICEBERG_ERROR'
  | 'ICEBERG_CONFLICT'
  | 'ICEBERG_COMMIT_UNKNOWN'
  | 'DUCKDB_ERROR'
  | 'REDIS_ERROR'
  | 'POSTGRES_ERROR'
  | 'USAGE';

export type ErrorContext = Record<string, string | number | bigint | boolean | null | undefined>;

export class LakestreamError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retriable?: boolean; context?: ErrorContext; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LakestreamError';
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }
}

export function isRetriable(error: unknown): boolean {
  if (error instanceof LakestreamError) return error.retriable;
  // Errors from the Kafka clients carry `retriable` or `isRetriable`; S3 SDK errors carry `$retryable`.
  const e = error as { retriable?: unknown; isRetriable?: unknown; $retryable?: unknown; code?: unknown } | null;
  if (e && typeof e === 'object') {
    // librdkafka's errors say `isRetriable`
    if (e.retriable === true || e.isRetriable === true || e.$retryable) return true;
    if (typeof e.code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(e.code)) return true;
    // librdkafka's local timeouts and transport failures (a request timed out, a broker gone),
    // which it does not flag as retriable itself
    if (typeof e.code === 'number' && [-185, -195, -187].includes(e.code)) return true;
  }
  return false;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/** A Node socket error that means the server could not be reached (as opposed to refusing us). */
export function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && networkCodes.has(code);
}

/** The URL without its password, fit for messages and logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}
