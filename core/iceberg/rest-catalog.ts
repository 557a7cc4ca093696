import { LakestreamError, errorMessage } from '../errors.ts';
import { retry } from '../retry.ts';
import type { IcebergSchema } from './schema.ts';

/**
 * A client of the Iceberg REST catalog protocol (the OpenAPI spec every REST catalog serves):
 * namespaces, tables, and the one commit call. Only what the lake needs; each call is retried
 * on transport errors and 5xx, never on 409, which is the catalog's answer to a lost race and
 * the writer's to resolve.
 */

export interface Snapshot {
  'snapshot-id': bigint;
  'parent-snapshot-id'?: bigint;
  'sequence-number': bigint;
  'timestamp-ms': number;
  'manifest-list': string;
  summary: Record<string, string> & { operation: string };
  'schema-id'?: number;
}

export interface TableMetadata {
  'format-version': number;
  'table-uuid': string;
  location: string;
  'last-sequence-number': bigint;
  'last-column-id': number;
  'current-schema-id': number;
  schemas: IcebergSchema[];
  'default-spec-id': number;
  'partition-specs': Array<{ 'spec-id': number; fields: unknown[] }>;
  'current-snapshot-id'?: bigint | null;
  snapshots?: Snapshot[];
  refs?: Record<string, { 'snapshot-id': bigint; type: string }>;
  properties?: Record<string, string>;
  'snapshot-log'?: Array<{ 'snapshot-id': bigint; 'timestamp-ms': number }>;
}

export interface LoadedTable {
  metadataLocation: string;
  metadata: TableMetadata;
}

export type Requirement =
  | { type: 'assert-ref-snapshot-id'; ref: string; 'snapshot-id': bigint | null }
  | { type: 'assert-current-schema-id'; 'current-schema-id': number }
  | { type: 'assert-table-uuid'; uuid: string }
  | { type: 'assert-default-spec-id'; 'default-spec-id': number };

export type Update = Record<string, unknown> & { action: string };

/** The catalog refused a commit because the table moved (409): re-read the table and decide again. */
export class CommitConflict extends LakestreamError {
  constructor(table: string, detail: string) {
    super('ICEBERG_CONFLICT', `commit to ${table} refused, the table changed under it: ${detail}`, { retriable: false, context: { table } });
  }
}

/**
 * Iceberg ids are 64-bit; a JS number keeps 53 bits. Integers of 16 or more digits in the
 * catalog's JSON become bigints (snapshot ids and sequence numbers are the ones that get there).
 */
function parseJsonWithLongs(text: string): unknown {
  const quoted = text.replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"__long:$2"');
  return JSON.parse(quoted, (_key, value) => (typeof value === 'string' && value.startsWith('__long:') ? BigInt(value.slice(7)) : value));
}

const LONG_FIELDS = new Set(['snapshot-id', 'parent-snapshot-id', 'sequence-number', 'last-sequence-number', 'current-snapshot-id']);

/** Long fields as bigints whatever their size, so ids compare with `===`. */
function normalizeLongs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalizeLongs);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, v]) => [key, LONG_FIELDS.has(key) && (typeof v === 'number' || typeof v === 'bigint') ? BigInt(v) : normalizeLongs(v)]),
    );
  }
  return value;
}

function stringifyWithLongs(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? `__long:${v}` : v)).replace(/"__long:(-?\d+)"/g, '$1');
}

export interface RestCatalogOptions {
  /** Base URL of the REST API (the part before `/v1/`). */
  uri: string;
  /** The catalog's warehouse (name or location), sent to /v1/config. */
  warehouse?: string;
  /** A bearer token, if the catalog wants one. */
  token?: string;
  timeoutMs?: number;
  retries?: number;
}

export interface RestCatalog {
  readonly uri: string;
  /** The URL prefix the catalog's /v1/config gave (`/v1/{prefix}/namespaces/...`), '' if none. */
  prefix(): Promise<string>;
  createNamespace(namespace: string[], properties?: Record<string, string>): Promise<boolean>;
  namespaceExists(namespace: string[]): Promise<boolean>;
  dropNamespace(namespace: string[]): Promise<void>;
  listTables(namespace: string[]): Promise<string[]>;
  /** Creates a table; false if it existed already. */
  createTable(namespace: string[], name: string, body: { schema: IcebergSchema; location?: string; 'partition-spec'?: unknown; 'write-order'?: unknown; properties?: Record<string, string> }): Promise<boolean>;
  loadTable(namespace: string[], name: string): Promise<LoadedTable | undefined>;
  /** Commits updates under requirements; throws CommitConflict on 409. */
  commitTable(namespace: string[], name: string, requirements: Requirement[], updates: Update[]): Promise<LoadedTable>;
  dropTable(namespace: string[], name: string, purge?: boolean): Promise<void>;
}

const encodeNamespace = (namespace: string[]) => encodeURIComponent(namespace.join('\x1f'));

export function createRestCatalog(options: RestCatalogOptions): RestCatalog {
  const base = options.uri.replace(/\/+$/, '');
  let prefix: Promise<string> | undefined;

  async function request(method: string, path: string, body?: unknown, retries = options.retries ?? 6): Promise<{ status: number; json: unknown }> {
    return retry(
      async ({ bail }) => {
        let response: Response;
        try {
          response = await fetch(`${base}${path}`, {
            method,
            headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
            body: body === undefined ? undefined : stringifyWithLongs(body),
            signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
          });
        } catch (cause) {
          const code = (cause as { cause?: { code?: string } }).cause?.code ?? errorMessage(cause);
          throw new LakestreamError('ICEBERG_ERROR', `the Iceberg catalog at ${base} is unreachable (${code}): is it running? (ICEBERG_CATALOG_URL)`, {
            retriable: true,
            cause,
            context: { service: 'iceberg-catalog', url: base },
          });
        }
        const text = await response.text();
        const json = text ? parseJsonWithLongs(text) : undefined;
        if (response.status >= 500) {
          const error = new LakestreamError('ICEBERG_ERROR', `Iceberg catalog ${method} ${path} answered ${response.status}: ${catalogMessage(json, text)}`, {
            retriable: true,
            context: { service: 'iceberg-catalog', status: response.status },
          });
          // 503/504 and the spec's CommitStateUnknown (500/502 on commit) are not errors to repeat blindly on a commit
          if (method === 'POST' && /\/tables\/[^/]+$/.test(path)) bail(unknownCommit(path, response.status, json, text));
          throw error;
        }
        return { status: response.status, json: normalizeLongs(json) };
      },
      { retries, initialDelayMs: 200, maxDelayMs: 3_000 },
    );
  }

  function fail(method: string, path: string, status: number, json: unknown): never {
    throw new LakestreamError('ICEBERG_ERROR', `Iceberg catalog ${method} ${path} answered ${status}: ${catalogMessage(json, '')}`, {
      context: { service: 'iceberg-catalog', status },
    });
  }

  const tablePath = async (namespace: string[], name: string) => `/v1/${await prefixPath()}namespaces/${encodeNamespace(namespace)}/tables/${encodeURIComponent(name)}`;
  const prefixPath = async () => {
    const value = await catalog.prefix();
    // the spec's prefix is a path segment as the server wrote it (Nessie's comes encoded: main%7Clake)
    return value ? `${value}/` : '';
  };

  const catalog: RestCatalog = {
    uri: base,
    prefix() {
      prefix ??= (async () => {
        const query = options.warehouse ? `?warehouse=${encodeURIComponent(options.warehouse)}` : '';
        const { status, json } = await request('GET', `/v1/config${query}`);
        if (status !== 200) {
          prefix = undefined;
          fail('GET', '/v1/config', status, json);
        }
        const config = json as { overrides?: Record<string, string>; defaults?: Record<string, string> };
        return config.overrides?.prefix ?? config.defaults?.prefix ?? '';
      })();
      return prefix;
    },
    async createNamespace(namespace, properties = {}) {
      const path = `/v1/${await prefixPath()}namespaces`;
      const { status, json } = await request('POST', path, { namespace, properties });
      if (status === 409) return false;
      if (status !== 200) fail('POST', path, status, json);
      return true;
    },
    async namespaceExists(namespace) {
      const path = `/v1/${await prefixPath()}namespaces/${encodeNamespace(namespace)}`;
      const { status, json } = await request('GET', path);
      if (status === 404) return false;
      if (status !== 200) fail('GET', path, status, json);
      return true;
    },
    async dropNamespace(namespace) {
      const path = `/v1/${await prefixPath()}namespaces/${encodeNamespace(namespace)}`;
      const { status, json } = await request('DELETE', path);
      if (status !== 204 && status !== 200 && status !== 404) fail('DELETE', path, status, json);
    },
    async listTables(namespace) {
      const path = `/v1/${await prefixPath()}namespaces/${encodeNamespace(namespace)}/tables`;
      const { status, json } = await request('GET', path);
      if (status === 404) return [];
      if (status !== 200) fail('GET', path, status, json);
      return ((json as { identifiers?: Array<{ name: string }> }).identifiers ?? []).map((id) => id.name);
    },
    async createTable(namespace, name, body) {
      const path = `/v1/${await prefixPath()}namespaces/${encodeNamespace(namespace)}/tables`;
      const { status, json } = await request('POST', path, { name, ...body, 'stage-create': false });
      if (status === 409) return false;
      if (status !== 200) fail('POST', path, status, json);
      return true;
    },
    async loadTable(namespace, name) {
      const path = await tablePath(namespace, name);
      const { status, json } = await request('GET', path);
      if (status === 404) return undefined;
      if (status !== 200) fail('GET', path, status, json);
      const loaded = json as { 'metadata-location': string; metadata: TableMetadata };
      return { metadataLocation: loaded['metadata-location'], metadata: loaded.metadata };
    },
    async commitTable(namespace, name, requirements, updates) {
      const path = await tablePath(namespace, name);
      // never repeated here: whether a commit whose answer was lost landed is for the writer to find out
      let answer: { status: number; json: unknown };
      try {
        answer = await request('POST', path, { identifier: { namespace, name }, requirements, updates }, 0);
      } catch (error) {
        if (error instanceof CommitStateUnknown) throw error;
        throw new CommitStateUnknown(`commit ${path} got no answer, its outcome is unknown: ${errorMessage(error)}`);
      }
      const { status, json } = answer;
      if (status === 409) throw new CommitConflict(`${namespace.join('.')}.${name}`, catalogMessage(json, ''));
      if (status !== 200) fail('POST', path, status, json);
      const loaded = json as { 'metadata-location': string; metadata: TableMetadata };
      return { metadataLocation: loaded['metadata-location'], metadata: loaded.metadata };
    },
    async dropTable(namespace, name, purge = false) {
      const path = `${await tablePath(namespace, name)}${purge ? '?purgeRequested=true' : ''}`;
      const { status, json } = await request('DELETE', path);
      if (status !== 204 && status !== 200 && status !== 404) fail('DELETE', path, status, json);
    },
  };
  return catalog;
}

/** The server's own words from an Iceberg error body ({ error: { message, type, code } }). */
function catalogMessage(json: unknown, text: string): string {
  const error = (json as { error?: { message?: string; type?: string } } | undefined)?.error;
  return error ? `${error.type ?? 'error'}: ${error.message ?? ''}` : text.slice(0, 300);
}

/**
 * The spec's CommitStateUnknownException: the commit may or may not have landed. The writer must
 * re-read the table and look for its own snapshot before doing anything else.
 */
export class CommitStateUnknown extends LakestreamError {
  constructor(message: string) {
    super('ICEBERG_COMMIT_UNKNOWN', message, { retriable: false });
  }
}

function unknownCommit(path: string, status: number, json: unknown, text: string): CommitStateUnknown {
  return new CommitStateUnknown(`commit ${path} answered ${status}, its outcome is unknown: ${catalogMessage(json, text)}`);
}
