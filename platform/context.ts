import type { S3Client } from '@aws-sdk/client-s3';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { Redis, RedisOptions } from 'ioredis';
import { createAvroDecoder, type AvroDecoder } from '../core/avro.ts';
import { catalog as resolveCatalog, type Catalog } from './catalog.ts';
import type { Config } from '../core/config.ts';
import { asKafkaUser } from '../core/kafka.ts';
import { createLogger, setLogLevel, type Logger } from '../core/log.ts';
import { createObjectStore, type ObjectStore } from '../core/object-store.ts';
import { createRedis } from '../core/redis.ts';
import { createRegistry } from '../core/registry.ts';
import { createS3 } from '../core/s3.ts';
import { createRestCatalog } from '../core/iceberg/rest-catalog.ts';
import type { TableDeps } from '../core/iceberg/table.ts';

/**
 * The clients one process shares among its jobs: one registry client and one schema cache, one
 * S3 client, one Redis connection, the resolved catalog, and the root logger (its level from the
 * validated config). S3 and Redis are opened on first use, so a process that needs neither never
 * connects to them.
 *
 * One retry layer per resource: S3 calls are retried by the object store (the SDK's retries are
 * off); registry and Redis calls made by stream jobs are retried by the runtime, batch by batch,
 * so these clients give up at once (registry) or after one reconnect (Redis).
 */
export interface ClientContext {
  readonly config: Config;
  readonly catalog: Catalog;
  readonly log: Logger;
  readonly registry: SchemaRegistry;
  /** Confluent-framed Avro decoding, with the writer schemas cached per process. */
  readonly decode: AvroDecoder;
  s3(): S3Client;
  objectStore(): ObjectStore;
  /** The Iceberg REST catalog of the lake tables, with the object store their files live in. */
  lakeTables(): TableDeps;
  redis(): Redis;
  /** Closes whatever was opened. Idempotent. */
  close(): Promise<void>;
}

/**
 * The same clients, with Kafka clients signing in as `user` on a secured cluster: each job of a
 * process gets only its own ACLs. Registry, S3 and Redis stay shared.
 */
export function asKafkaUserContext(context: ClientContext, user: string): ClientContext {
  const config = asKafkaUser(context.config, user);
  return config === context.config ? context : { ...context, config };
}

export interface ClientContextOptions {
  namespace?: string;
  /** The `component` of every log line. */
  component?: string;
  /** Registry retries per call (0: stream jobs retry whole batches; a server answering a request may retry once). */
  registryRetries?: number;
  /** How the Redis connection behaves (a dashboard connects lazily, a server gives up fast). */
  redis?: RedisOptions;
}

export function createClientContext(config: Config, options: ClientContextOptions = {}): ClientContext {
  setLogLevel(config.LOG_LEVEL, config.LOG_FORMAT);
  const registry = createRegistry(config, { retries: options.registryRetries ?? 0 });
  let s3: S3Client | undefined;
  let store: ObjectStore | undefined;
  let redis: Redis | undefined;
  let tables: TableDeps | undefined;
  let closed: Promise<void> | undefined;
  return {
    config,
    catalog: resolveCatalog(options.namespace ?? ''),
    log: createLogger(options.component ?? 'lakestream'),
    registry,
    decode: createAvroDecoder(registry),
    s3: () => (s3 ??= createS3(config)),
    objectStore() {
      store ??= createObjectStore(this.s3(), config.LAKE_BUCKET);
      return store;
    },
    lakeTables() {
      tables ??= { catalog: lakeCatalog(config), store: this.objectStore() };
      return tables;
    },
    redis: () => (redis ??= createRedis(config, { maxRetriesPerRequest: 1, ...options.redis })),
    close() {
      closed ??= (async () => {
        s3?.destroy();
        // without a connection there is nothing to flush, only a reconnect loop to end
        if (redis?.status === 'ready') await redis.quit().catch(() => redis!.disconnect());
        else redis?.disconnect();
      })();
      return closed;
    },
  };
}

/** The lake's REST catalog client from the config (one per process; see ClientContext.lakeTables). */
export function lakeCatalog(config: Pick<Config, 'ICEBERG_CATALOG_URL' | 'ICEBERG_WAREHOUSE' | 'ICEBERG_TOKEN'>) {
  return createRestCatalog({ uri: config.ICEBERG_CATALOG_URL, warehouse: config.ICEBERG_WAREHOUSE, ...(config.ICEBERG_TOKEN ? { token: config.ICEBERG_TOKEN } : {}) });
}
