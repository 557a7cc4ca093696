import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigResourceTypes, IncrementalAlterConfigOperationTypes, type Admin } from '@platformatic/kafka';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { repoRoot } from '../core/config.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { retry } from '../core/retry.ts';
import { registerAvro, setCompatibility } from '../core/registry.ts';
import { desiredConfigs, effectiveReplication, type TopicSpec } from './topics.ts';

export const schemasDir = join(repoRoot, 'schemas');

export interface ApplyAction {
  topic: string;
  kind: 'created' | 'configured' | 'unchanged' | 'drift' | 'schema' | 'user' | 'acl';
  detail: string;
}

export interface ApplyDeps {
  admin: Admin;
  registry: SchemaRegistry;
  registryUrl: string;
}

/**
 * Makes the cluster and the registry match `specs`. Idempotent: a second run reports every
 * topic unchanged and registers nothing new (the registry returns the existing id for an
 * identical schema). Returns what it did; drift it must not fix is reported, not thrown.
 */
export async function applyInfra(specs: TopicSpec[], deps: ApplyDeps): Promise<ApplyAction[]> {
  const { admin } = deps;
  const actions: ApplyAction[] = [];
  const cluster = await admin.metadata({ topics: [] });
  const brokers = cluster.brokers.size;
  const existing = new Set(await admin.listTopics());

  for (const spec of specs) {
    const { replicationFactor } = effectiveReplication(spec, brokers);
    const wanted = desiredConfigs(spec, brokers);
    // A broker's metadata can lag a creation by moments, so "missing" may already exist.
    if (!existing.has(spec.name) && (await createTopic(admin, spec, replicationFactor, wanted))) {
      actions.push({ topic: spec.name, kind: 'created', detail: `${spec.partitions} partitions, RF ${replicationFactor}, ${formatConfigs(wanted)}` });
    } else {
      actions.push(...(await reconcile(admin, spec, replicationFactor, wanted)));
    }
    if (spec.valueSchema) actions.push(await registerSchema(deps, spec));
  }
  return actions;
}

/** The broker's own reasons inside an admin error (the client wraps them in an AggregateError). */
function adminErrorDetail(error: unknown): string {
  const inner = (error as { errors?: Array<{ message?: string }> }).errors;
  return inner?.length ? `${errorMessage(error)}: ${inner.map((e) => e.message).join('; ')}` : errorMessage(error);
}

/**
 * Creates a topic; returns false if it already existed. Refusals are retried for a few seconds
 * (a busy or just-started cluster can refuse a creation it accepts moments later); a lasting one
 * surfaces with the broker's reason.
 */
async function createTopic(admin: Admin, spec: TopicSpec, replicationFactor: number, configs: Record<string, string>): Promise<boolean> {
  let attempts = 0;
  return retry(
    async () => {
      attempts++;
      try {
        await admin.createTopics({
          topics: [spec.name],
          partitions: spec.partitions,
          replicas: replicationFactor,
          configs: Object.entries(configs).map(([name, value]) => ({ name, value })),
        });
        return true;
      } catch (error) {
        // it existed already, or an earlier attempt of ours created it
        if (/already exists/i.test(adminErrorDetail(error))) return attempts > 1;
        throw new LakestreamError('KAFKA_ERROR', `cannot create topic ${spec.name}: ${adminErrorDetail(error)}`, {
          cause: error,
          retriable: true,
          context: { topic: spec.name },
        });
      }
    },
    { retries: 8, initialDelayMs: 250, maxDelayMs: 2_000 },
  );
}

async function reconcile(admin: Admin, spec: TopicSpec, replicationFactor: number, wanted: Record<string, string>): Promise<ApplyAction[]> {
  const actions: ApplyAction[] = [];
  const metadata = await admin.metadata({ topics: [spec.name], forceUpdate: true });
  const topic = metadata.topics.get(spec.name);
  if (topic) {
    if (topic.partitionsCount !== spec.partitions) {
      actions.push({
        topic: spec.name,
        kind: 'drift',
        detail: `has ${topic.partitionsCount} partitions, declared ${spec.partitions}; not changed (repartitioning a keyed topic moves keys)`,
      });
    }
    const actualRf = topic.partitions[0]?.replicas.length ?? 0;
    if (actualRf !== replicationFactor) {
      actions.push({ topic: spec.name, kind: 'drift', detail: `replication factor ${actualRf}, declared ${replicationFactor}; needs a partition reassignment` });
    }
  }
  const [description] = await admin.describeConfigs({
    resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: spec.name, configurationKeys: Object.keys(wanted) }],
  });
  const actual = Object.fromEntries((description?.configs ?? []).map((entry) => [entry.name, entry.value ?? '']));
  const changed = Object.entries(wanted).filter(([name, value]) => actual[name] !== value);
  if (changed.length) {
    await admin.incrementalAlterConfigs({
      resources: [
        {
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: spec.name,
          configs: changed.map(([name, value]) => ({ name, value, configOperation: IncrementalAlterConfigOperationTypes.SET })),
        },
      ],
    });
    actions.push({
      topic: spec.name,
      kind: 'configured',
      detail: changed.map(([name, value]) => `${name}: ${actual[name]} -> ${value}`).join(', '),
    });
  } else if (!actions.length) {
    actions.push({ topic: spec.name, kind: 'unchanged', detail: formatConfigs(wanted) });
  }
  return actions;
}

async function registerSchema(deps: ApplyDeps, spec: TopicSpec): Promise<ApplyAction> {
  const subject = `${spec.name}-value`;
  const schema = readFileSync(join(schemasDir, spec.valueSchema!), 'utf8');
  await setCompatibility(deps.registryUrl, subject, 'BACKWARD_TRANSITIVE');
  try {
    const id = await registerAvro(deps.registry, subject, schema);
    return { topic: spec.name, kind: 'schema', detail: `${subject} -> id ${id} (BACKWARD_TRANSITIVE)` };
  } catch (cause) {
    throw new LakestreamError('SCHEMA_INCOMPATIBLE', `registry refused ${spec.valueSchema} for ${subject}: ${errorMessage(cause)}`, {
      cause,
      context: { subject, topic: spec.name },
    });
  }
}

function formatConfigs(configs: Record<string, string>): string {
  return Object.entries(configs)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ');
}
