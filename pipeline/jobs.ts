import type { Config } from '../core/config.ts';
import { validateTransaction } from '../ingest/transactions/record.ts';
import { createFeaturesJob } from '../processors/transactions-features/job.ts';
import { createLakeSink } from '../sinks/lake/lake-sink.ts';
import { DEFAULT_USER_KEY_PREFIX } from '../sinks/redis/online-store.ts';
import { createRedisSink } from '../sinks/redis/redis-sink.ts';

export interface Job {
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): object;
}

export interface PipelineSettings {
  /**
   * Isolates a whole pipeline: prefixes its topics (`<ns>.transactions`), consumer groups, lake
   * tables and sink state (`<ns>/transactions/…`) and Redis keys (`<ns>:feat:user:`). Empty in
   * production; tests and parallel environments set it.
   */
  namespace: string;
  flushRows?: number;
  flushIntervalMs?: number;
  instance?: string;
}

export function pipelineNames(namespace: string) {
  const topic = (name: string) => (namespace ? `${namespace}.${name}` : name);
  const path = (name: string) => (namespace ? `${namespace}/${name}` : name);
  return {
    transactions: topic('transactions'),
    counts: topic('user-transaction-counts'),
    dlq: `dlq.${topic('transactions')}`,
    transactionsTable: path('transactions'),
    countsTable: path('features/user_transaction_counts'),
    stateRoot: path('_lakestream/sinks'),
    group: topic,
    userKeyPrefix: namespace ? `${namespace}:${DEFAULT_USER_KEY_PREFIX}` : DEFAULT_USER_KEY_PREFIX,
  };
}

/** Every job of the transactions pipeline, by name. */
export function transactionsJobs(config: Config, settings: PipelineSettings): Record<string, () => Job> {
  const names = pipelineNames(settings.namespace);
  const flush = {
    ...(settings.flushRows ? { flushRows: settings.flushRows } : {}),
    ...(settings.flushIntervalMs ? { flushIntervalMs: settings.flushIntervalMs } : {}),
  };
  return {
    'transactions-job-backup': () =>
      createLakeSink(
        {
          name: names.group('transactions-job-backup'),
          topic: names.transactions,
          table: names.transactionsTable,
          eventTimeField: 'transaction_timestamp_millis',
          stateRoot: names.stateRoot,
          ...flush,
        },
        { config, validate: (record) => void validateTransaction(record) },
      ),
    'transactions-ml-features-job': () =>
      createFeaturesJob(
        { name: names.group('transactions-ml-features-job'), inputTopic: names.transactions, outputTopic: names.counts, instance: settings.instance ?? '0' },
        { config },
      ),
    'user-transaction-counts-lake-sink': () =>
      createLakeSink(
        {
          name: names.group('user-transaction-counts-lake-sink'),
          topic: names.counts,
          table: names.countsTable,
          eventTimeField: 'event_timestamp_millis',
          stateRoot: names.stateRoot,
          ...flush,
        },
        { config },
      ),
    'user-transaction-counts-redis-sink': () =>
      createRedisSink({ name: names.group('user-transaction-counts-redis-sink'), topic: names.counts, keyPrefix: names.userKeyPrefix }, { config }),
  };
}
