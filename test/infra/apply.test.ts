import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigResourceTypes, IncrementalAlterConfigOperationTypes } from '@platformatic/kafka';
import { createRegistry, getCompatibility } from '../../core/registry.ts';
import { applyInfra } from '../../infra/apply.ts';
import { topicsFor, type TopicSpec } from '../../infra/topics.ts';
import { cleanupTopics, config, testAdmin, uniqueName } from '../helpers.ts';

function testSpecs(): TopicSpec[] {
  return topicsFor(uniqueName('apply'));
}

test('infra:apply twice leaves the same topics and schemas', async (t) => {
  const admin = testAdmin(t);
  const specs = testSpecs();
  cleanupTopics(t, admin, specs.map((spec) => spec.name));
  const deps = { admin, registry: createRegistry(config), registryUrl: config.SCHEMA_REGISTRY_URL };

  const first = await applyInfra(specs, deps);
  assert.deepEqual(
    first.filter((a) => a.kind === 'created').map((a) => a.topic),
    specs.map((s) => s.name),
  );
  const firstSchemas = first.filter((a) => a.kind === 'schema').map((a) => a.detail);
  assert.equal(firstSchemas.length, specs.filter((s) => s.valueSchema).length);

  const second = await applyInfra(specs, deps);
  assert.deepEqual(
    second.filter((a) => a.kind !== 'schema').map((a) => [a.topic, a.kind]),
    specs.map((s) => [s.name, 'unchanged']),
  );
  assert.deepEqual(second.filter((a) => a.kind === 'schema').map((a) => a.detail), firstSchemas, 'same subjects, same ids');

  const brokers = config.KAFKA_BROKERS.length;
  const metadata = await admin.metadata({ topics: specs.map((s) => s.name), forceUpdate: true });
  for (const spec of specs) {
    const topic = metadata.topics.get(spec.name)!;
    assert.equal(topic.partitionsCount, spec.partitions, `${spec.name} partitions`);
    assert.equal(topic.partitions[0]!.replicas.length, Math.min(3, brokers), `${spec.name} replication factor`);
    const [described] = await admin.describeConfigs({
      resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: spec.name, configurationKeys: ['cleanup.policy', 'min.insync.replicas', 'retention.ms', 'min.compaction.lag.ms'] }],
    });
    const actual = Object.fromEntries(described!.configs.map((c) => [c.name, c.value]));
    assert.equal(actual['cleanup.policy'], spec.cleanupPolicy);
    assert.equal(actual['min.insync.replicas'], brokers >= 3 ? '2' : '1');
    assert.equal(actual['retention.ms'], String(spec.retentionMs));
    if (spec.minCompactionLagMs !== undefined) assert.equal(actual['min.compaction.lag.ms'], String(spec.minCompactionLagMs), `${spec.name} min.compaction.lag.ms`);
    if (spec.valueSchema) assert.equal(await getCompatibility(config.SCHEMA_REGISTRY_URL, `${spec.name}-value`), 'BACKWARD_TRANSITIVE');
  }
});

test('infra:apply fixes config drift and reports partition drift it must not fix', async (t) => {
  const admin = testAdmin(t);
  const [spec] = testSpecs();
  cleanupTopics(t, admin, [spec!.name]);
  await admin.createTopics({ topics: [spec!.name], partitions: 2, replicas: Math.min(3, config.KAFKA_BROKERS.length) });
  await admin.incrementalAlterConfigs({
    resources: [
      {
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: spec!.name,
        configs: [{ name: 'retention.ms', value: '1000', configOperation: IncrementalAlterConfigOperationTypes.SET }],
      },
    ],
  });
  // a broker serves configs from its copy of the cluster metadata, which follows the controller
  // by a moment: apply must see the drift, so wait until every read agrees on it
  await waitForRetention(admin, spec!.name, '1000');
  const actions = await applyInfra([spec!], { admin, registry: createRegistry(config), registryUrl: config.SCHEMA_REGISTRY_URL });
  const drift = actions.find((a) => a.kind === 'drift');
  assert.match(drift?.detail ?? '', /has 2 partitions, declared 6/);
  const configured = actions.find((a) => a.kind === 'configured');
  assert.match(configured?.detail ?? '', /retention\.ms: 1000 -> 86400000/);
  const metadata = await admin.metadata({ topics: [spec!.name], forceUpdate: true });
  assert.equal(metadata.topics.get(spec!.name)!.partitionsCount, 2, 'partitions left alone');
});

async function waitForRetention(admin: ReturnType<typeof testAdmin>, topic: string, expected: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  let agreeing = 0;
  let last: string | undefined;
  while (agreeing < 5) {
    const [described] = await admin.describeConfigs({
      resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['retention.ms'] }],
    });
    last = described!.configs.find((c) => c.name === 'retention.ms')?.value ?? undefined;
    agreeing = last === expected ? agreeing + 1 : 0;
    if (Date.now() > deadline) assert.fail(`retention.ms of ${topic} still reads ${last}, not ${expected}, 15 s after it was set`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
