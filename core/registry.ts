import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { exactLong } from './avro-long.ts';
import type { Config } from './config.ts';
import { LakestreamError, errorMessage } from './errors.ts';

/**
 * Registry client with the Confluent wire format (magic byte + 4-byte schema id + Avro body).
 * Its Avro types read `long` exactly (core/avro-long.ts): numbers while safe, bigints beyond.
 */
export function createRegistry(config: Pick<Config, 'SCHEMA_REGISTRY_URL'>, options: { retries?: number } = {}): SchemaRegistry {
  return new SchemaRegistry(
    { host: config.SCHEMA_REGISTRY_URL.replace(/\/+$/, ''), retry: { retries: options.retries ?? 3 }, middlewares: [requestTimeout(REGISTRY_TIMEOUT_MS)] },
    // A type hook, not avsc's `registry` option: that map collects every named type it parses, so
    // a client sharing one would refuse the second version of a record as a duplicate name.
    { [SchemaType.AVRO]: { typeHook: (schema: unknown) => (isPlainLong(schema) ? exactLong : undefined) } } as ConstructorParameters<typeof SchemaRegistry>[1],
  );
}

/** A registry that takes a connection and never answers fails the call instead of holding it for ever. */
const REGISTRY_TIMEOUT_MS = 15_000;

/** mappersmith's timeout middleware, written here: the client library does not export mappersmith. */
function requestTimeout(ms: number): RegistryMiddleware {
  return () => ({
    async prepareRequest(next) {
      const request = await next();
      return request.timeout() ? request : request.enhance({ timeout: ms });
    },
  });
}

type RegistryMiddleware = NonNullable<ConstructorParameters<typeof SchemaRegistry>[0]['middlewares']>[number];

function isPlainLong(schema: unknown): boolean {
  if (schema === 'long') return true;
  const object = schema as { type?: unknown; logicalType?: unknown } | null;
  return typeof object === 'object' && object !== null && object.type === 'long' && object.logicalType === undefined;
}

export type CompatibilityLevel =
  | 'BACKWARD'
  | 'BACKWARD_TRANSITIVE'
  | 'FORWARD'
  | 'FORWARD_TRANSITIVE'
  | 'FULL'
  | 'FULL_TRANSITIVE'
  | 'NONE';

async function registryCall(baseUrl: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${baseUrl.replace(/\/+$/, '')}${path}`, {
    method,
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json', accept: 'application/vnd.schemaregistry.v1+json, application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown = text;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // some error pages are not JSON; keep the text as the reason
  }
  return { status: response.status, json };
}

/** Sets a subject's compatibility level (the registry enforces it on every later registration). */
export async function setCompatibility(baseUrl: string, subject: string, level: CompatibilityLevel): Promise<void> {
  const { status, json } = await registryCall(baseUrl, 'PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: level });
  if (status >= 300) {
    throw new LakestreamError('REGISTRY_ERROR', `registry refused compatibility ${level} for ${subject}: ${status} ${JSON.stringify(json)}`, {
      context: { subject },
    });
  }
}

/** The subject's own compatibility level, or undefined when it follows the global default. */
export async function getCompatibility(baseUrl: string, subject: string): Promise<string | undefined> {
  const { status, json } = await registryCall(baseUrl, 'GET', `/config/${encodeURIComponent(subject)}`);
  if (status === 404) return undefined;
  const body = json as { compatibilityLevel?: string; compatibility?: string };
  return body.compatibilityLevel ?? body.compatibility;
}

export async function listSubjects(baseUrl: string): Promise<string[]> {
  const { status, json } = await registryCall(baseUrl, 'GET', '/subjects');
  if (status >= 300) throw new LakestreamError('REGISTRY_ERROR', `GET /subjects answered ${status}`, { retriable: status >= 500 });
  return json as string[];
}

export async function deleteSubject(baseUrl: string, subject: string): Promise<void> {
  await registryCall(baseUrl, 'DELETE', `/subjects/${encodeURIComponent(subject)}`);
  await registryCall(baseUrl, 'DELETE', `/subjects/${encodeURIComponent(subject)}?permanent=true`);
}

/**
 * Registers an Avro schema under `subject` (idempotent: an identical schema gets its existing id).
 * The client compares the subject's level with the one it is told; saying BACKWARD_TRANSITIVE
 * matches the registry's global rule instead of pinning the subject to the client's default.
 */
export async function registerAvro(registry: SchemaRegistry, subject: string, schema: string): Promise<number> {
  const { id } = await registry.register({ type: SchemaType.AVRO, schema }, { subject, compatibility: COMPATIBILITY.BACKWARD_TRANSITIVE });
  return id;
}

/**
 * Only a missing subject is fixed by infra:apply. The registry client rejects every failure with
 * a `status`: the registry's own answer, or 400 with the socket error as the message when no
 * answer came (refused, DNS, timeout), which is told apart by that message.
 */
export function schemaLookupError(registryUrl: string, subject: string, cause: unknown): LakestreamError {
  const url = withoutCredentials(registryUrl);
  const status = (cause as { status?: unknown } | null)?.status;
  // "Confluent_Schema_Registry - Error, status 400: connect ECONNREFUSED 127.0.0.1:8081"
  const detail = errorMessage(cause).replace(/^[\w.-]+ - /, '').replace(/\s+/g, ' ').trim();
  const body = detail.replace(/^Error, status \d+:? ?/, '').slice(0, 300);
  const context = { subject, registryUrl: url, status: typeof status === 'number' ? status : undefined };
  if (status === 404) {
    return new LakestreamError('REGISTRY_ERROR', `no schema registered for ${subject} at ${url}; run \`pnpm run infra:apply\` first`, { cause, context });
  }
  const answered5xx = typeof status === 'number' && status >= 500;
  const noAnswer = !answered5xx && registryUnreachable(cause);
  if (noAnswer || answered5xx) {
    const reason = noAnswer ? body || detail : `answered ${status}${body ? `: ${body}` : ''}`;
    return new LakestreamError('REGISTRY_ERROR', `schema registry at ${url} is unreachable: ${reason}`, { cause, retriable: true, context });
  }
  return new LakestreamError('REGISTRY_ERROR', `schema registry at ${url} failed the lookup of ${subject}: ${detail}`, { cause, context });
}

function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url;
  }
}

/**
 * Whether a registry client failure means no answer came (refused, DNS, timeout) or the registry
 * failed (5xx): worth another attempt, unlike an answer such as 404.
 */
export function registryUnreachable(cause: unknown): boolean {
  const status = (cause as { status?: unknown } | null)?.status;
  if (typeof status !== 'number') return true;
  if (status >= 500) return true;
  const body = errorMessage(cause).replace(/^[\w.-]+ - /, '').replace(/\s+/g, ' ').trim().replace(/^Error, status \d+:? ?/, '');
  return status === 400 && /^(connect|getaddrinfo|read|write) E[A-Z]+\b|^socket hang up|^Timeout \(\d+ms\)/.test(body);
}
