import type { TestContext } from 'node:test';
import { catalog } from '../../platform/catalog.ts';
import type { Config } from '../../core/config.ts';
import { createClientContext } from '../../platform/context.ts';
import { openLake } from '../../platform/lake.ts';
import { createRedis } from '../../core/redis.ts';
import { createRegistry } from '../../core/registry.ts';
import { applyInfra } from '../../infra/apply.ts';
import { dropLakeNamespace } from '../../infra/namespace.ts';
import { topicsFor } from '../../infra/topics.ts';
import { pipelineJobs, type JobSettings } from '../../pipeline/jobs.ts';
import { cleanupPrefix, cleanupRedisPrefix, cleanupTopics, config, onCleanup, testAdmin, testS3, uniqueName, waitFor } from '../helpers.ts';

/**
 * A namespaced pipeline of its own for one test: topics (with the DLQ), schemas, a lake prefix
 * and a Redis key prefix, all removed afterwards. `settings` change the jobs' configuration.
 */
export async function setupPipeline(t: TestContext, label: string, settings: Partial<Config> = {}) {
  const namespace = uniqueName(label);
  const names = catalog(namespace);
  const admin = testAdmin(t);
  const specs = topicsFor(namespace);
  cleanupTopics(t, admin, specs.map((spec) => spec.name));
  const registry = createRegistry(config);
  await applyInfra(specs, { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
  cleanupPrefix(t, testS3(t), `${namespace}/`);
  // cleanups run last-registered first: the catalog entries go before the files they point at
  onCleanup(t, () => dropLakeNamespace(config, namespace).catch(() => {}));
  const redis = createRedis(config);
  onCleanup(t, () => redis.quit());
  cleanupRedisPrefix(t, redis, `${namespace}:`);
  const context = createClientContext({ ...config, ...settings }, { namespace });
  onCleanup(t, () => context.close());
  /** The pipeline's jobs by name, built in this process; each stops after the test. */
  const job = (name: string, settings: JobSettings = {}) => {
    const created = pipelineJobs(context, settings)[name]!();
    onCleanup(t, () => created.stop());
    return created;
  };

  /** Runs SQL over this pipeline's lake tables. */
  const query = async <T = Record<string, unknown>>(sql: string): Promise<T[]> => {
    const lake = await openLake(config, namespace);
    try {
      return (await lake.connection.runAndReadAll(sql)).getRowObjectsJson() as T[];
    } finally {
      lake.close();
    }
  };
  /** Rows in a lake view (transactions, user_transaction_counts). */
  const count = async (view: 'transactions' | 'user_transaction_counts'): Promise<number> =>
    Number((await query<{ n: string }>(`SELECT count(*) AS n FROM ${view}`))[0]!.n);
  /** Waits until `view` holds at least `rows` rows; returns how many it holds then. */
  const waitForCount = (view: 'transactions' | 'user_transaction_counts', rows: number, timeoutMs = 120_000, intervalMs = 1_000) =>
    waitFor(`${rows} rows in ${view}`, async () => ((await count(view)) >= rows ? count(view) : undefined), timeoutMs, intervalMs);
  return { namespace, names, context, job, admin, registry, redis, query, count, waitForCount };
}
