import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ARCHIVED_COMPACTION_LAG_MS, catalog, featureDeclarations, tableDeclarations, topicDeclarations } from '../../platform/catalog.ts';
import { repoRoot } from '../../core/config.ts';
import { columnsOf } from '../../core/lake-layout.ts';
import { redisFields } from '../../features/online-store.ts';

type AvroField = { name: string; type: unknown };
const schemaOf = (file: string) => JSON.parse(readFileSync(join(repoRoot, 'schemas', file), 'utf8')) as { type: string; fields: AvroField[] };

test('every topic has an Avro schema in schemas/ and a dead-letter topic', () => {
  const resolved = catalog();
  for (const declaration of Object.values(topicDeclarations)) {
    assert.ok(existsSync(join(repoRoot, 'schemas', declaration.valueSchema)), `${declaration.valueSchema} exists`);
    const fields = schemaOf(declaration.valueSchema).fields.map((f) => f.name);
    assert.ok(fields.includes(declaration.key), `${declaration.name}: its key field ${declaration.key} is in the schema`);
    assert.ok(resolved.topicSpecs.some((spec) => spec.name === `dlq.${declaration.name}`), `dlq.${declaration.name} is declared`);
  }
  const names = resolved.topicSpecs.map((spec) => spec.name);
  assert.equal(new Set(names).size, names.length, 'topic names are unique');
});

test('a compacted topic a lake table archives keeps its records uncompacted for a day; other changelogs compact at once; delete topics say nothing', () => {
  const specs = new Map(catalog().topicSpecs.map((spec) => [spec.name, spec]));
  const archived = new Set(Object.values(tableDeclarations).map((table) => topicDeclarations[table.topic].name));
  const compacted = Object.values(topicDeclarations).filter((d) => d.cleanupPolicy.includes('compact'));
  assert.ok(compacted.some((d) => archived.has(d.name)) && compacted.some((d) => !archived.has(d.name)), 'both kinds exist');
  for (const declaration of Object.values(topicDeclarations)) {
    const { minCompactionLagMs } = specs.get(declaration.name)!;
    if (!declaration.cleanupPolicy.includes('compact')) assert.equal(minCompactionLagMs, undefined, declaration.name);
    else assert.equal(minCompactionLagMs, archived.has(declaration.name) ? ARCHIVED_COMPACTION_LAG_MS : 0, declaration.name);
  }
  assert.equal(specs.get('user-transaction-counts')!.minCompactionLagMs, 24 * 60 * 60 * 1000);
});

test('every lake table partitions by an epoch-millisecond field of its topic, and jobs have unique groups', () => {
  for (const [id, table] of Object.entries(tableDeclarations)) {
    const columns = columnsOf(schemaOf(topicDeclarations[table.topic].valueSchema) as Parameters<typeof columnsOf>[0]);
    const eventTime = columns.find((c) => c.name === table.eventTimeField);
    assert.equal(eventTime?.sqlType, 'BIGINT', `${id}: ${table.eventTimeField} is a long`);
  }
  const resolved = catalog();
  const groups = [...Object.values(resolved.tables).map((t) => t.group), ...Object.values(resolved.features).map((f) => f.redisSinkGroup)];
  assert.equal(new Set(groups).size, groups.length, 'consumer groups are unique');
  const views = Object.values(resolved.tables).map((t) => t.view);
  assert.equal(new Set(views).size, views.length, 'view names are unique');
});

test('a feature declaration matches its topic schema, lake table and Redis hash', () => {
  for (const [id, feature] of Object.entries(featureDeclarations)) {
    const fields = schemaOf(topicDeclarations[feature.topic].valueSchema).fields;
    const type = (name: string) => fields.find((f) => f.name === name)?.type;
    for (const name of [feature.entityKey, ...Object.keys(feature.fields), feature.eventTimeField]) {
      assert.ok(fields.some((f) => f.name === name), `${id}: ${name} is a field of the ${feature.topic} record`);
    }
    for (const [field, avroType] of Object.entries(feature.fields)) {
      // a nullable value (a window's min with no transaction in it) is stored empty, read back as null
      const avro = type(field);
      assert.ok(avro === avroType || JSON.stringify(avro) === JSON.stringify(['null', avroType]), `${id}.${field} is ${avroType} (or null) in Avro, not ${JSON.stringify(avro)}`);
    }
    assert.equal(type(feature.eventTimeField), 'long');
    assert.ok(field(feature.monotonicField, feature.fields), `${id}: the monotonic field is one of the feature fields`);
    assert.equal(tableDeclarations[feature.table].topic, feature.topic, `${id}: its lake table archives its topic`);
    assert.deepEqual(redisFields(catalog().features[id as keyof typeof featureDeclarations]), [...Object.keys(feature.fields), 'updated_at']);
  }
  const prefixes = Object.values(catalog().features).map((feature) => feature.redisPrefix);
  assert.equal(new Set(prefixes).size, prefixes.length, `no two features share a Redis hash: ${prefixes.join(', ')}`);
});

function field(name: string, fields: Record<string, unknown>): boolean {
  return Object.hasOwn(fields, name);
}

test('a namespace isolates every name: topics, groups, lake paths, state roots and Redis keys', () => {
  const plain = catalog();
  const ns = catalog('t1');
  for (const spec of ns.topicSpecs) assert.match(spec.name, /^(dlq\.)?t1\./);
  for (const table of Object.values(ns.tables)) {
    assert.ok(table.path.startsWith('t1/'));
    assert.ok(table.group.startsWith('t1.'));
    assert.ok(table.sinkStateRoot.startsWith('t1/_lakestream/'));
    assert.ok(table.topic.startsWith('t1.'));
  }
  for (const root of Object.values(ns.roots)) assert.ok(root.startsWith('t1/'));
  for (const feature of Object.values(ns.features)) assert.ok(feature.redisPrefix.startsWith('t1:feat:'));
  assert.equal(plain.topic.transactions, 'transactions');
  assert.equal(plain.deadLetterTopic(ns.topic.transactions), 'dlq.t1.transactions');
  assert.equal(plain.features.userTransactionCounts.redisPrefix, 'feat:user:');
  assert.equal(plain.tables.userTransactionCounts.sinkStateRoot, '_lakestream/sinks/user-transaction-counts-lake-sink');
});
