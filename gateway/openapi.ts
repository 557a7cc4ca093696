import type { Type } from 'avsc';

type JsonSchema = Record<string, unknown>;

/** An Avro type as JSON Schema (OpenAPI 3.1): what the gateway accepts for it in JSON. */
function jsonSchemaOf(type: Type): JsonSchema {
  const union = (type as unknown as { types?: Type[] }).types;
  if (union) {
    const options = union.map(jsonSchemaOf);
    const value = options.filter((option) => option.type !== 'null');
    return value.length === 1 && options.length === 2 ? { ...value[0], type: [value[0]!.type, 'null'].flat() } : { oneOf: options };
  }
  switch (type.typeName.replace(/^abstract:/, '')) {
    case 'null':
      return { type: 'null' };
    case 'boolean':
      return { type: 'boolean' };
    case 'int':
      return { type: 'integer', format: 'int32' };
    case 'long':
      // JSON numbers lose digits beyond 2^53: larger ids come as strings of digits
      return { type: ['integer', 'string'], format: 'int64', pattern: '^-?\\d{1,19}$' };
    case 'float':
    case 'double':
      return { type: 'number' };
    case 'string':
      return { type: 'string' };
    case 'enum':
      return { type: 'string', enum: (type as unknown as { symbols: string[] }).symbols };
    case 'array':
      return { type: 'array', items: jsonSchemaOf((type as unknown as { itemsType: Type }).itemsType) };
    case 'record':
      return recordSchema(type);
    default:
      return {};
  }
}

function recordSchema(type: Type): JsonSchema {
  const fields = (type as unknown as { fields: Array<{ name: string; type: Type; doc?: string; defaultValue(): unknown }> }).fields;
  return {
    type: 'object',
    title: (type as unknown as { name?: string }).name?.split('.').pop(),
    description: (type as unknown as { doc?: string }).doc,
    additionalProperties: false,
    required: fields.filter((field) => field.defaultValue() === undefined).map((field) => field.name),
    properties: Object.fromEntries(fields.map((field) => [field.name, { ...jsonSchemaOf(field.type), ...(field.doc ? { description: field.doc } : {}) }])),
  };
}

const problem = (description: string, extra: JsonSchema = {}) => ({
  description,
  content: { 'application/json': { schema: { type: 'object', required: ['error'], properties: { error: { type: 'string' }, ...extra } } } },
});

/**
 * The gateway's OpenAPI document, generated from the Avro schemas registered for its topics (the
 * same types every record is checked against), so the two never disagree.
 */
export function openApiDocument(topics: Array<{ name: string; type: Type; description: string }>, options: { apiKeys: boolean; maxBodyBytes: number; maxRecords: number }): JsonSchema {
  const schemas: Record<string, JsonSchema> = {};
  const paths: Record<string, JsonSchema> = {};
  for (const topic of topics) {
    const schemaName = (topic.type as unknown as { name: string }).name.split('.').pop()!;
    schemas[schemaName] = recordSchema(topic.type);
    const ref = { $ref: `#/components/schemas/${schemaName}` };
    paths[`/v1/topics/${topic.name}/records`] = {
      post: {
        summary: `Publish ${topic.name} records`,
        description: `${topic.description} One record or an array of up to ${options.maxRecords}: every record is checked first, and either all are published (acks=all) or none.`,
        operationId: `publish_${topic.name.replace(/\W/g, '_')}`,
        ...(options.apiKeys ? { security: [{ apiKey: [] }] } : {}),
        parameters: [
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
            description:
              'Retries with the same key and the same records publish them at most once (remembered 24 h, per client and topic): a retry of a finished request gets its answer again (Idempotent-Replayed: true), one after a partial failure sends only the records surely not written. A record that may have been written (it timed out after reaching a broker) is never sent again under the key: the retry gets 409 with outcome "indeterminate".',
          },
        ],
        requestBody: { required: true, content: { 'application/json': { schema: { oneOf: [ref, { type: 'array', items: ref, minItems: 1, maxItems: options.maxRecords }] } } } },
        responses: {
          '200': {
            description: 'Every record acknowledged by the in-sync replicas',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Accepted' } } },
          },
          '400': problem('Invalid records: nothing was published', { records: { type: 'array', items: { $ref: '#/components/schemas/RecordErrors' } } }),
          ...(options.apiKeys ? { '401': problem('No or unknown API key'), '403': problem('The API key may not publish to this topic') } : {}),
          '404': problem('No such topic'),
          '413': problem(`Body over ${options.maxBodyBytes} bytes or more than ${options.maxRecords} records`),
          '409': {
            ...problem('A request with this Idempotency-Key is still being published (with Retry-After), or (outcome "indeterminate", no Retry-After) some of its records may or may not have been published by an earlier attempt and are not sent again: look for them in the topic or use a new key', {
              outcome: { type: 'string', enum: ['indeterminate'] },
              records: { type: 'array', items: {} },
            }),
            headers: { 'Retry-After': { schema: { type: 'integer' } } },
          },
          '415': problem('Not JSON'),
          '422': problem('This Idempotency-Key was used with different records'),
          '503': { ...problem('Kafka did not acknowledge in time: nothing is known to be published; retry after Retry-After seconds'), headers: { 'Retry-After': { schema: { type: 'integer' } } } },
        },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'lakestream HTTP gateway', version: '1', description: 'Publishes JSON records to Kafka as Avro, checked against the registered schemas and the business rules.' },
    paths: {
      ...paths,
      '/healthz': { get: { summary: 'The process is up', responses: { '200': { description: 'ok' } } } },
      '/readyz': { get: { summary: 'Kafka and the schema registry answer', responses: { '200': { description: 'ready' }, '503': problem('not ready') } } },
    },
    components: {
      schemas: {
        ...schemas,
        Accepted: {
          type: 'object',
          required: ['topic', 'records'],
          properties: { topic: { type: 'string' }, records: { type: 'array', items: { type: 'object', required: ['partition', 'offset'], properties: { partition: { type: 'integer' }, offset: { type: 'integer' } } } } },
        },
        RecordErrors: {
          type: 'object',
          required: ['index', 'errors'],
          properties: { index: { type: 'integer' }, errors: { type: 'array', items: { type: 'object', required: ['field', 'message'], properties: { field: { type: 'string' }, message: { type: 'string' } } } } },
        },
      },
      ...(options.apiKeys ? { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <key> (or X-API-Key: <key>)' } } } : {}),
    },
  };
}
