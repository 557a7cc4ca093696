import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, apiKeyCheck, createGuardedServer, decodePathSegment, readJsonBody, requestPath } from '../core/http.ts';
import { errorMessage, redactedUrl } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { metrics, registry as metricsRegistry, secondsSince } from '../core/metrics.ts';
import type { ResolvedFeature } from '../platform/catalog.ts';
import type { ClientContext } from '../platform/context.ts';
import { readFeatures, type FeatureRow } from './online-store.ts';

/**
 * The online features over HTTP, for serving code that is not TypeScript. `POST
 * /get-online-features` takes Feast's request and answers in Feast's response shape, so a
 * client written against `feast serve` works unchanged; `GET /v1/features/{entity}/{id}` is the
 * short form. A feature view is a feature of the catalog served from Redis, named like its lake
 * table (`user_transaction_counts`); a reference is `<view>:<feature>`.
 */
export interface FeatureServerOptions {
  port: number;
  host: string;
  maxBodyBytes: number;
  /** Most entity rows in one request (413 beyond). */
  maxEntities: number;
  /**
   * Per view, how old (by the event time of its values) a row may be and still be served; an
   * older one is OUTSIDE_MAX_AGE with no value, as Feast does past a view's TTL. None: any age.
   */
  maxAgeSeconds: Record<string, number>;
  /** API keys by key (the gateway's file format); none: the server is open. */
  apiKeys?: Map<string, { client: string }>;
  log: Logger;
  now?: () => number;
}

export interface FeatureServer {
  url: string;
  close(): Promise<void>;
}

export type FeatureStatus = 'PRESENT' | 'NULL_VALUE' | 'NOT_FOUND' | 'OUTSIDE_MAX_AGE';

/** Feast's status of one value of a row whose own status is PRESENT: a window with no transaction has no min. */
const valueStatus = (status: FeatureStatus, value: unknown): FeatureStatus => (status === 'PRESENT' && value == null ? 'NULL_VALUE' : status);

interface FeatureView {
  name: string;
  feature: ResolvedFeature;
  names: string[];
}

const EPOCH = new Date(0).toISOString().replace('.000Z', 'Z');
const timestampOf = (millis: number) => new Date(millis).toISOString().replace('.000Z', 'Z');

/** The gateway's API key file (`{"<key>": {"client": "…", …}}`), keys of 16 characters or more. */
export function readFeatureApiKeys(file: string): Map<string, { client: string }> {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { client?: unknown }>;
  const keys = new Map<string, { client: string }>();
  for (const [key, grant] of Object.entries(parsed)) {
    if (key.length < 16) throw new Error(`an API key in ${file} is shorter than 16 characters`);
    keys.set(key, { client: String(grant?.client ?? 'unnamed') });
  }
  return keys;
}

/** The feature views the server can serve: every catalog feature that a Redis sink keeps online. */
export function featureViews(context: ClientContext): Map<string, FeatureView> {
  return new Map(
    Object.values(context.catalog.features)
      .filter((feature) => feature.redisSink)
      .map((feature) => [feature.table.view, { name: feature.table.view, feature, names: Object.keys(feature.fields) }]),
  );
}

export async function startFeatureServer(context: ClientContext, options: FeatureServerOptions): Promise<FeatureServer> {
  const views = featureViews(context);
  const now = options.now ?? Date.now;
  for (const view of Object.keys(options.maxAgeSeconds)) {
    if (!views.has(view)) throw new Error(`a max age for ${view}, which is no feature view (views: ${[...views.keys()].join(', ')})`);
  }
  const keyGrant = options.apiKeys ? apiKeyCheck(options.apiKeys) : undefined;

  const authorise = (request: IncomingMessage): void => void keyGrant?.(request);

  /** A view's rows for `ids`, read from Redis in one round trip; 503 when Redis does not answer. */
  async function rowsOf(view: FeatureView, ids: Array<string | number>): Promise<Array<FeatureRow | null>> {
    try {
      return await readFeatures(context.redis(), view.feature, ids);
    } catch (error) {
      throw new HttpError(503, `the online store (Redis at ${redactedUrl(context.config.REDIS_URL)}) did not answer: ${errorMessage(error)}`, {}, { 'retry-after': '5' });
    }
  }

  /** A row's status and event time: OUTSIDE_MAX_AGE past the view's max age, by event time. */
  function statusOf(view: FeatureView, row: FeatureRow | null): { status: FeatureStatus; updatedAt?: number } {
    if (!row) return { status: 'NOT_FOUND' };
    const updatedAt = Number(row.updated_at);
    const maxAge = options.maxAgeSeconds[view.name];
    if (maxAge !== undefined && now() - updatedAt > maxAge * 1000) return { status: 'OUTSIDE_MAX_AGE', updatedAt };
    return { status: 'PRESENT', updatedAt };
  }

  /** Feast's GetOnlineFeaturesRequest, checked field by field. */
  function parseFeastRequest(body: unknown): { refs: Array<{ view: FeatureView; feature: string; ref: string }>; entities: Record<string, Array<string | number>>; rows: number; fullNames: boolean } {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'the body must be an object: {"features": ["<view>:<feature>", …], "entities": {"<join key>": [ids]}}');
    const request = body as Record<string, unknown>;
    if (request.feature_service !== undefined) throw new HttpError(400, 'feature_service: feature services are not declared here; name the features in "features"');
    if (!Array.isArray(request.features) || !request.features.length) throw new HttpError(400, 'features: an array of "<view>:<feature>" references is required');
    const refs = request.features.map((ref, index) => {
      if (typeof ref !== 'string') throw new HttpError(400, `features[${index}]: a "<view>:<feature>" string, not ${JSON.stringify(ref)}`);
      const [viewName, feature, extra] = ref.split(':');
      const view = views.get(viewName ?? '');
      if (feature === undefined || extra !== undefined) throw new HttpError(400, `features[${index}]: "${ref}" is not "<view>:<feature>"`);
      if (!view) throw new HttpError(400, `features[${index}]: no feature view ${viewName} (views: ${[...views.keys()].join(', ')})`);
      if (!view.names.includes(feature)) throw new HttpError(400, `features[${index}]: ${viewName} has no feature ${feature} (it has ${view.names.join(', ')})`);
      return { view, feature, ref };
    });
    if (!request.entities || typeof request.entities !== 'object' || Array.isArray(request.entities)) throw new HttpError(400, 'entities: an object of join key to an array of ids is required');
    const entities = request.entities as Record<string, unknown>;
    let rows: number | undefined;
    for (const [key, ids] of Object.entries(entities)) {
      if (!Array.isArray(ids) || !ids.length) throw new HttpError(400, `entities.${key}: an array of ids is required`);
      const bad = ids.findIndex((id) => !(typeof id === 'string' && id.length > 0) && !(typeof id === 'number' && Number.isSafeInteger(id)));
      if (bad >= 0) throw new HttpError(400, `entities.${key}[${bad}]: an id is an integer or a non-empty string, not ${JSON.stringify(ids[bad])}`);
      if (rows !== undefined && ids.length !== rows) throw new HttpError(400, `entities.${key}: ${ids.length} ids, the other join keys have ${rows}`);
      rows = ids.length;
    }
    for (const { view, ref } of refs) {
      if (!(view.feature.entityKey in entities)) throw new HttpError(400, `entities.${view.feature.entityKey}: required by ${ref}`);
    }
    if (rows === undefined) throw new HttpError(400, 'entities: no join key given');
    if (rows > options.maxEntities) throw new HttpError(413, `${rows} entity rows in one request; the limit is ${options.maxEntities}`);
    if (request.full_feature_names !== undefined && typeof request.full_feature_names !== 'boolean') throw new HttpError(400, 'full_feature_names: true or false');
    return { refs, entities: entities as Record<string, Array<string | number>>, rows, fullNames: request.full_feature_names === true };
  }

  async function getOnlineFeatures(body: unknown): Promise<unknown> {
    const { refs, entities, fullNames } = parseFeastRequest(body);
    const wanted = [...new Set(refs.map(({ view }) => view))];
    const rowsByView = new Map(await Promise.all(wanted.map(async (view) => [view, await rowsOf(view, entities[view.feature.entityKey]!)] as const)));
    const featureNames: string[] = [];
    const results: Array<{ values: unknown[]; statuses: FeatureStatus[]; event_timestamps: string[] }> = [];
    for (const [key, ids] of Object.entries(entities)) {
      featureNames.push(key);
      results.push({ values: ids, statuses: ids.map(() => 'PRESENT'), event_timestamps: ids.map(() => EPOCH) });
    }
    for (const { view, feature } of refs) {
      featureNames.push(fullNames ? `${view.name}__${feature}` : feature);
      const column = { values: [] as unknown[], statuses: [] as FeatureStatus[], event_timestamps: [] as string[] };
      for (const row of rowsByView.get(view)!) {
        const { status, updatedAt } = statusOf(view, row);
        const value = status === 'PRESENT' ? (row![feature] ?? null) : null;
        column.values.push(value);
        column.statuses.push(valueStatus(status, value));
        column.event_timestamps.push(updatedAt === undefined ? EPOCH : timestampOf(updatedAt));
      }
      results.push(column);
    }
    return { metadata: { feature_names: featureNames }, results };
  }

  /** Every feature of the entity's views, by reference, each with its value, status and event time. */
  async function entityFeatures(entity: string, id: string): Promise<unknown> {
    const ofEntity = [...views.values()].filter((view) => view.feature.entity === entity);
    if (!ofEntity.length) throw new HttpError(404, `no feature view describes ${entity} (entities: ${[...new Set([...views.values()].map((view) => view.feature.entity))].join(', ')})`);
    const features: Record<string, { value: unknown; status: FeatureStatus; updated_at: string | null }> = {};
    for (const view of ofEntity) {
      const [row] = await rowsOf(view, [id]);
      const { status, updatedAt } = statusOf(view, row ?? null);
      for (const name of view.names) {
        const value = status === 'PRESENT' ? (row![name] ?? null) : null;
        features[`${view.name}:${name}`] = { value, status: valueStatus(status, value), updated_at: updatedAt === undefined ? null : timestampOf(updatedAt) };
      }
    }
    return { entity, id, features };
  }

  function openApi(): unknown {
    const refs = [...views.values()].flatMap((view) => view.names.map((name) => `${view.name}:${name}`));
    return {
      openapi: '3.0.3',
      info: { title: 'lakestream feature server', version: '1', description: 'Online features from Redis, in Feast\'s request and response shapes.' },
      paths: {
        '/get-online-features': {
          post: {
            summary: 'Feature values of entities (Feast\'s get-online-features)',
            requestBody: {
              required: true,
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['features', 'entities'],
                    properties: {
                      features: { type: 'array', items: { type: 'string', enum: refs } },
                      entities: { type: 'object', additionalProperties: { type: 'array', items: { oneOf: [{ type: 'integer' }, { type: 'string' }] } } },
                      full_feature_names: { type: 'boolean' },
                    },
                  },
                  example: { features: [refs[0]], entities: { [[...views.values()][0]!.feature.entityKey]: [1, 2] } },
                },
              },
            },
            responses: {
              200: {
                description: 'One result per name in metadata.feature_names (join keys first), each with a value, a status and an event time per entity row',
                content: {
                  'application/json': {
                    schema: {
                      type: 'object',
                      properties: {
                        metadata: { type: 'object', properties: { feature_names: { type: 'array', items: { type: 'string' } } } },
                        results: {
                          type: 'array',
                          items: {
                            type: 'object',
                            properties: {
                              values: { type: 'array', items: {} },
                              statuses: { type: 'array', items: { type: 'string', enum: ['PRESENT', 'NULL_VALUE', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'] } },
                              event_timestamps: { type: 'array', items: { type: 'string', format: 'date-time' } },
                            },
                          },
                        },
                      },
                    },
                  },
                },
              },
              400: { description: 'A malformed request; the error names the field' },
              401: { description: 'No or an unknown API key' },
              503: { description: 'Redis did not answer' },
            },
          },
        },
        '/v1/features/{entity}/{id}': {
          get: {
            summary: 'Every feature of one entity',
            parameters: [
              { name: 'entity', in: 'path', required: true, schema: { type: 'string', enum: [...new Set([...views.values()].map((view) => view.feature.entity))] } },
              { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
            ],
            responses: { 200: { description: '{entity, id, features: {"<view>:<feature>": {value, status, updated_at}}}' }, 404: { description: 'No feature view describes the entity' } },
          },
        },
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } } },
      ...(options.apiKeys ? { security: [{ bearer: [] }, { apiKey: [] }] } : {}),
    };
  }

  const reply = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
    response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

  const server = createGuardedServer('feature server', options.log, async (request, response) => {
    const started = performance.now();
    const path = requestPath(request.url);
    let route = 'other';
    try {
      if (path === undefined) throw new HttpError(400, 'the request target must be a path starting with /');
      const entityPath = /^\/v1\/features\/([^/]+)\/([^/]+)$/.exec(path);
      if (path === '/get-online-features') {
        route = 'get-online-features';
        if (request.method !== 'POST') throw new HttpError(405, 'features are read with POST', {}, { allow: 'POST' });
        authorise(request);
        return reply(response, 200, await getOnlineFeatures(await readJsonBody(request, options.maxBodyBytes)));
      }
      if (entityPath) {
        route = 'entity';
        if (request.method !== 'GET') throw new HttpError(405, 'an entity\'s features are read with GET', {}, { allow: 'GET' });
        const [entity, id] = [decodePathSegment(entityPath[1]!), decodePathSegment(entityPath[2]!)];
        if (entity === undefined || id === undefined) throw new HttpError(400, `${path.slice(0, 200)} is not valid percent-encoded UTF-8`);
        authorise(request);
        return reply(response, 200, await entityFeatures(entity, id));
      }
      if (request.method !== 'GET' && request.method !== 'HEAD') throw new HttpError(path === '/healthz' || path === '/readyz' || path === '/metrics' || path === '/openapi.json' ? 405 : 404, `no ${request.method} ${path.slice(0, 200)}`);
      if (path === '/healthz') return reply(response, 200, { ok: true });
      if (path === '/readyz') {
        try {
          await context.redis().ping();
        } catch (error) {
          throw new HttpError(503, `Redis at ${redactedUrl(context.config.REDIS_URL)} did not answer: ${errorMessage(error)}`);
        }
        return reply(response, 200, { ok: true });
      }
      if (path === '/metrics') return response.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(await metricsRegistry.metrics());
      if (path === '/openapi.json') return reply(response, 200, openApi());
      throw new HttpError(404, `no ${path.slice(0, 200)}: POST /get-online-features, GET /v1/features/{entity}/{id}, /openapi.json, /healthz, /readyz, /metrics`);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      // a body refused before it was read must not hold the connection
      request.resume();
      reply(response, error.status, { error: error.message }, error.headers);
      if (error.status >= 500) options.log.warn('feature request failed', { path: path?.slice(0, 200), error: error.message });
      metrics.featureServerRequests.inc({ route, status: String(error.status) });
      return;
    } finally {
      if (response.statusCode < 400) metrics.featureServerRequests.inc({ route, status: String(response.statusCode) });
      if (route !== 'other') metrics.featureServerRequestDuration.observe({ route }, secondsSince(started));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
