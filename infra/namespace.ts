import type { Admin } from '@platformatic/kafka';
import type { Redis } from 'ioredis';
import { icebergNamespace } from '../platform/catalog.ts';
import type { Config } from '../core/config.ts';
import { lakeCatalog } from '../platform/context.ts';
import type { ObjectStore } from '../core/object-store.ts';
import { deleteSubject } from '../core/registry.ts';
import { topicsFor } from './topics.ts';

/**
 * Removes everything a namespaced pipeline left behind: its topics and their schemas, its lake
 * tables in the Iceberg catalog and their prefix, and its Redis keys. For tools that run a pipeline of their own (chaos, benchmarks).
 */
export async function dropNamespace(config: Config, namespace: string, deps: { admin: Admin; objectStore: ObjectStore; redis: Redis }, extraTopics: string[] = []): Promise<void> {
  if (!namespace) throw new Error('refusing to drop the production namespace');
  const topics = topicsFor(namespace).map((spec) => spec.name);
  const existing = new Set(await deps.admin.listTopics());
  const doomed = [...topics, ...extraTopics].filter((topic) => existing.has(topic));
  if (doomed.length) await deps.admin.deleteTopics({ topics: doomed });
  for (const topic of topics) await deleteSubject(config.SCHEMA_REGISTRY_URL, `${topic}-value`).catch(() => {});
  await dropLakeNamespace(config, namespace);
  await deps.objectStore.delete(await deps.objectStore.list(`${namespace}/`));
  let cursor = '0';
  do {
    const [next, keys] = await deps.redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
    if (keys.length) await deps.redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Drops a namespace's Iceberg tables and the namespace itself from the catalog (the files go with the prefix). */
export async function dropLakeNamespace(config: Config, namespace: string): Promise<void> {
  if (!namespace) throw new Error('refusing to drop the production namespace');
  const catalog = lakeCatalog(config);
  const icebergNs = [icebergNamespace(namespace)];
  for (const table of await catalog.listTables(icebergNs)) await catalog.dropTable(icebergNs, table);
  await catalog.dropNamespace(icebergNs);
}
