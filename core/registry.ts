import { COMPATIBILITY, SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { Config } from './config.ts';
import { LakestreamError } from './errors.ts';

/** Registry client with the Confluent wire format (magic byte + 4-byte schema id + Avro body). */
export function createRegistry(config: Pick<Config, 'SCHEMA_REGISTRY_URL'>): SchemaRegistry {
  return new SchemaRegistry({ host: config.SCHEMA_REGISTRY_URL.replace(/\/+$/, ''), retry: { retries: 3 } });
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
