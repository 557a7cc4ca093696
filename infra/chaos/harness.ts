import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigResourceTypes, IncrementalAlterConfigOperationTypes, type Admin } from '@platformatic/kafka';
import { catalog, topicDeclarations, type Catalog } from '../../platform/catalog.ts';
import type { Config } from '../../core/config.ts';
import { errorMessage } from '../../core/errors.ts';
import { createAdmin } from '../../core/kafka.ts';
import { openLake } from '../../platform/lake.ts';
import { createObjectStore } from '../../core/object-store.ts';
import { createRedis } from '../../core/redis.ts';
import { createRegistry } from '../../core/registry.ts';
import { sleep } from '../../core/retry.ts';
import { createS3 } from '../../core/s3.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTopicProducer } from '../../ingest/topic-producer.ts';
import { startJobProcess, type JobProcess as BaseJobProcess } from '../../scripts/pipeline-process.ts';
import { getUserFeatures } from '../../features/online-store.ts';
import { applyInfra } from '../apply.ts';
import { dropNamespace } from '../namespace.ts';
import { topicsFor } from '../topics.ts';
import { stackFaults, type StackFaults } from './stack-faults.ts';

/** The transactions pipeline a scenario runs: each job in a process of its own, so one can be killed. */
export const PIPELINE_JOBS = ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-counts-redis-sink'] as const;
const USERS = 200;

export interface JobProcess extends BaseJobProcess {
  readonly name: string;
}

export interface ScenarioContext {
  config: Config;
  names: Catalog;
  admin: Admin;
  faults: StackFaults;
  /** The running process of each pipeline job. */
  jobs: Map<string, JobProcess>;
  startJob(name: string, instance?: string): JobProcess;
  /** A line for the table's notes (what happened, what the tool saw). */
  note(text: string): void;
  log(message: string): void;
  /** The fault is healed from here: recovery is measured from this moment. */
  healed(): void;
  /** What the producer has seen so far. */
  producer(): ProducerFigures;
  /** Topics the scenario created beside the pipeline's, dropped with it. */
  extraTopics: string[];
  /** Rows of a query over the pipeline's lake tables (DuckDB over the catalog). */
  queryLake<T = Record<string, unknown>>(sql: string): Promise<T[]>;
}

export interface Scenario {
  id: string;
  name: string;
  expected: string;
  /** Jobs started beside PIPELINE_JOBS, from the start. */
  jobs?: string[];
  /** Runs against the flowing pipeline: inject, wait, heal (calling `healed()`). */
  run(ctx: ScenarioContext): Promise<void>;
  /** After the drain, against the lake: a reason if the scenario's own tables are wrong. */
  verify?(ctx: ScenarioContext): Promise<string | undefined>;
  /** A scenario's own expectation beyond no loss, no duplicates and exact features; a reason if unmet. */
  check?(row: ChaosRow): string | undefined;
}

export interface ProducerFigures {
  sent: number;
  acknowledged: number;
  /** Records whose delivery failed, by reason. */
  failed: Map<string, number>;
  /** librdkafka's retried requests. */
  retries: number;
  /** Longest a record waited for its acknowledgement. */
  maxAckMs: number;
  /** Seconds during which some record had waited more than a second. */
  blockedSeconds: number;
}

export interface ChaosRow {
  scenario: string;
  expected: string;
  producer: ProducerFigures;
  inLake: number;
  duplicates: number;
  lost: number;
  /** Stored although the producer was told it failed (a timeout after the write): not a loss, not a duplicate. */
  storedUnacknowledged: number;
  inFeatures: number;
  featuresExact: boolean;
  recoverSeconds: number | undefined;
  notes: string[];
  met: boolean;
  missed: string[];
}

export interface ChaosOptions {
  /** Transactions per second the producer sends throughout (default 300). */
  rate?: number;
  /** Seconds of steady flow before the fault (default 8). */
  warmupSeconds?: number;
  /** Seconds of flow after the scenario healed (default 8). */
  afterSeconds?: number;
  /** How long the pipeline may take to drain (default 180 s). */
  drainTimeoutMs?: number;
  /** Replication of the pipeline's topics instead of the catalog's (RF 3, min ISR 2). */
  replication?: { factor: number; minInsync: number };
  log?: (message: string) => void;
}

/**
 * Runs one scenario on a pipeline of its own (a namespace: topics, lake prefix, Redis keys):
 * the transactions producer at a steady rate with a unique sequence number per record
 * (`counterpart_id`), the backup sink, the features job and the Redis sink each in its own
 * process; the scenario's fault and heal; then the drain, and the count of every record.
 */
export async function runScenario(config: Config, scenario: Scenario, options: ChaosOptions = {}): Promise<ChaosRow> {
  const begun = performance.now();
  // every line carries its time in the run, so a slow or stuck phase can be told from the log alone
  const log = (message: string) => options.log?.(`${((performance.now() - begun) / 1000).toFixed(1)} s ${message}`);
  const rate = options.rate ?? 300;
  const namespace = `chaos-${scenario.id}-${Date.now().toString(36)}`;
  const names = catalog(namespace);
  const admin = createAdmin(config, 'lakestream-chaos');
  const redis = createRedis(config);
  const objectStore = createObjectStore(createS3(config), config.LAKE_BUCKET);
  const notes: string[] = [];
  const jobs = new Map<string, JobProcess>();
  const started: JobProcess[] = [];
  let figures = (): ProducerFigures => ({ sent: 0, acknowledged: 0, failed: new Map(), retries: 0, maxAckMs: 0, blockedSeconds: 0 });
  const ctx: ScenarioContext = {
    config,
    names,
    admin,
    faults: stackFaults(config),
    jobs,
    extraTopics: [],
    startJob(name, instance = '0') {
      const job = { name, ...startJobProcess([name], ['--namespace', namespace, '--flush-interval-ms', '1000', '--instance', instance]) };
      if (instance === '0') jobs.set(name, job);
      started.push(job);
      return job;
    },
    note: (text) => void notes.push(text),
    log: (message) => log(`${scenario.id}: ${message}`),
    healed: () => void (healedAt ??= performance.now()),
    producer: () => figures(),
    async queryLake<T>(sql: string) {
      const lake = await openLake(config, namespace);
      try {
        return (await lake.connection.runAndReadAll(sql)).getRowObjectsJS() as T[];
      } finally {
        lake.close();
      }
    },
  };
  let healedAt: number | undefined;
  let logsSaved = false;
  /** Every job process's output, for a look at what went wrong. */
  const saveLogs = () => {
    logsSaved = true;
    const dir = join(config.LAKESTREAM_STACK_DIR, 'chaos', namespace);
    mkdirSync(dir, { recursive: true });
    started.forEach((job, i) => writeFileSync(join(dir, `${i}-${job.name}.log`), job.output()));
    return dir;
  };
  try {
    const replication = options.replication;
    const specs = topicsFor(namespace).map((spec) => (replication && !spec.name.startsWith('dlq.') ? { ...spec, replicationFactor: replication.factor, minInsyncReplicas: replication.minInsync } : spec));
    await applyInfra(specs, { admin, registry: createRegistry(config), registryUrl: config.SCHEMA_REGISTRY_URL });
    // apply keeps min ISR below RF so that one broker may fail; an experiment may want it equal
    if (replication && replication.minInsync >= replication.factor) {
      for (const spec of specs.filter((s) => !s.name.startsWith('dlq.'))) {
        await admin.incrementalAlterConfigs({
          resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: spec.name, configs: [{ name: 'min.insync.replicas', value: String(replication.minInsync), configOperation: IncrementalAlterConfigOperationTypes.SET }] }],
        });
      }
    }
    for (const job of [...PIPELINE_JOBS, ...(scenario.jobs ?? [])]) ctx.startJob(job);

    // the producer: a steady rate, one send per record so each one's fate is known
    const acknowledged = new Set<number>();
    const failed = new Map<string, number>();
    const inFlight = new Map<number, number>();
    let maxAckMs = 0;
    let blockedMs = 0;
    let sent = 0;
    const producer = await createTopicProducer(config, { ...topicDeclarations.transactions, name: names.topic.transactions }, { deliveryTimeoutMs: 20_000 });
    figures = (): ProducerFigures => ({ sent, acknowledged: acknowledged.size, failed: new Map(failed), retries: producer.retried, maxAckMs, blockedSeconds: blockedMs / 1000 });
    const generate = createTransactionGenerator({ users: USERS, seed: 7, spreadDays: 0 });
    let producing = true;
    const producing$ = (async () => {
      const started = performance.now();
      for (let tick = 0; producing; tick++) {
        const due = started + tick * 20;
        if (due > performance.now()) await sleep(due - performance.now());
        const oldest = inFlight.values().next().value;
        if (oldest !== undefined && performance.now() - oldest > 1_000) blockedMs += 20;
        for (let i = 0; i < Math.max(1, Math.round(rate / 50)); i++) {
          const id = sent++;
          const sentAt = performance.now();
          inFlight.set(id, sentAt);
          producer
            .send([{ ...generate(), counterpart_id: id }])
            .then(() => void acknowledged.add(id))
            .catch((error: unknown) => {
              const reason = errorMessage(error).replace(/^\d+ of \d+ records not delivered to \S+: /, '');
              failed.set(reason, (failed.get(reason) ?? 0) + 1);
            })
            .finally(() => {
              maxAckMs = Math.max(maxAckMs, performance.now() - sentAt);
              inFlight.delete(id);
            });
        }
      }
    })();

    const lakeIds = async (upTo = Number.MAX_SAFE_INTEGER) => {
      const rows = await ctx.queryLake<{ id: number; copies: number }>(`SELECT counterpart_id AS id, count(*)::INTEGER AS copies FROM transactions WHERE counterpart_id <= ${upTo} GROUP BY 1`);
      return new Map(rows.map((row) => [Number(row.id), Number(row.copies)]));
    };

    ctx.log(`warming up at ${rate} records/s`);
    await sleep((options.warmupSeconds ?? 8) * 1000);
    // a scenario that breaks down still heals the stack and is reported, not thrown
    let scenarioError: string | undefined;
    ctx.log('fault');
    await scenario.run(ctx).catch(async (error: unknown) => {
      scenarioError = errorMessage(error);
      await ctx.faults.heal();
    });
    ctx.healed();
    ctx.log(`healed${scenarioError ? ` after the scenario failed: ${scenarioError}` : ''}`);
    // recovery: every record acknowledged by the time of healing is in the lake
    const snapshot = [...acknowledged];
    const snapshotMax = Math.max(-1, ...snapshot);
    const recovery$ = (async () => {
      const deadline = performance.now() + (options.drainTimeoutMs ?? 180_000);
      while (performance.now() < deadline) {
        const stored = await lakeIds(snapshotMax).catch(() => new Map<number, number>());
        if (snapshot.every((id) => stored.has(id))) return (performance.now() - healedAt!) / 1000;
        await sleep(1_000);
      }
      return undefined;
    })();
    await sleep((options.afterSeconds ?? 8) * 1000);
    producing = false;
    await producing$;
    ctx.log(`stopped producing; ${inFlight.size} records still in flight`);
    // delivery.timeout.ms settles every send; past it a record still in flight is a client bug to report, not to wait on forever
    const settleDeadline = performance.now() + 30_000;
    while (inFlight.size && performance.now() < settleDeadline) await sleep(100);
    if (inFlight.size) notes.push(`${inFlight.size} sends never settled`);
    await producer.close();
    ctx.log('producer closed');

    // jobs that died on their own are part of the verdict, then restarted to drain
    for (const [name, job] of jobs) {
      if (job.child.exitCode !== null || job.child.signalCode !== null) {
        const lastError = [...job.output().matchAll(/"level":"(?:error|fatal)".*?"msg":"([^"]+)"(?:.*?"error":"([^"]{0,200}))?/g)].at(-1);
        notes.push(`${name} exited (${job.child.exitCode ?? job.child.signalCode})${lastError ? `: ${lastError[1]} ${lastError[2] ?? ''}`.trimEnd() : ''}`);
        ctx.startJob(name);
      }
    }

    ctx.log('draining');
    const recoverSeconds = await recovery$;
    const drainDeadline = performance.now() + (options.drainTimeoutMs ?? 180_000);
    let stored = new Map<number, number>();
    let inFeatures = 0;
    let featuresExact = false;
    let drainRounds = 0;
    for (;;) {
      stored = await lakeIds();
      const perUser = new Map<number, number>();
      for (const row of await ctx.queryLake<{ user_id: number; n: number }>('SELECT user_id, count(DISTINCT counterpart_id)::INTEGER AS n FROM transactions GROUP BY 1')) {
        perUser.set(Number(row.user_id), Number(row.n));
      }
      const userIds = Array.from({ length: USERS + 1 }, (_, i) => i);
      const online = await getUserFeatures(redis, userIds, names.features.userTransactionCounts.redisPrefix);
      inFeatures = online.reduce((sum, feature) => sum + (feature?.total_transactions_count ?? 0), 0);
      featuresExact = userIds.every((id, i) => (online[i]?.total_transactions_count ?? 0) === (perUser.get(id) ?? 0));
      const allAcknowledgedStored = [...acknowledged].every((id) => stored.has(id));
      if ((allAcknowledgedStored && featuresExact) || performance.now() > drainDeadline) break;
      // a drain that takes long says where it stands, so a stall can be told from slowness
      if (++drainRounds % 15 === 0) ctx.log(`draining: ${stored.size} of ${acknowledged.size} acknowledged in the lake, ${inFeatures} counted in Redis`);
      await sleep(2_000);
    }

    const verified = scenario.verify ? await scenario.verify(ctx).catch((error: unknown) => `its check failed: ${errorMessage(error)}`) : undefined;
    const duplicates = [...stored.values()].reduce((sum, copies) => sum + copies - 1, 0);
    const lost = [...acknowledged].filter((id) => !stored.has(id)).length;
    const storedUnacknowledged = [...stored.keys()].filter((id) => !acknowledged.has(id)).length;
    const row: ChaosRow = {
      scenario: scenario.name,
      expected: scenario.expected,
      producer: figures(),
      inLake: stored.size,
      duplicates,
      lost,
      storedUnacknowledged,
      inFeatures,
      featuresExact,
      recoverSeconds,
      notes,
      met: false,
      missed: [],
    };
    if (lost) row.missed.push(`${lost} acknowledged records lost`);
    if (duplicates) row.missed.push(`${duplicates} duplicates`);
    if (!featuresExact) row.missed.push('features differ from the lake');
    if (recoverSeconds === undefined) row.missed.push('did not recover');
    if (notes.some((text) => / exited \(/.test(text))) row.missed.push('a job died');
    if (notes.some((text) => /sends never settled/.test(text))) row.missed.push('sends never settled');
    if (scenarioError) row.missed.push(`the scenario failed: ${scenarioError}`);
    const own = scenario.check?.(row);
    if (own) row.missed.push(own);
    if (verified) row.missed.push(verified);
    row.met = !row.missed.length;
    // kept for every run (a met row can still show how it recovered), named in the notes when missed
    const logs = saveLogs();
    if (!row.met) row.notes.push(`job logs: ${logs}`);
    return row;
  } finally {
    // a run cut short (a test's time limit) still leaves the jobs' output behind
    if (!logsSaved) log(`${scenario.id}: job logs in ${saveLogs()}`);
    log(`${scenario.id}: stopping the jobs and dropping ${namespace}`);
    await Promise.all([...jobs.values()].map((job) => job.terminate(30_000).catch(() => {})));
    await Promise.all(started.map((job) => job.kill9()));
    await dropNamespace(config, namespace, { admin, objectStore, redis }, ctx.extraTopics).catch((error: unknown) => log(`cleanup of ${namespace} failed: ${errorMessage(error)}`));
    await admin.close().catch(() => {});
    redis.disconnect();
  }
}
