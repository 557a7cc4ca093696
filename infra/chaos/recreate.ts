import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { catalog } from '../../platform/catalog.ts';
import { repoRoot, type Config } from '../../core/config.ts';
import { createAdmin } from '../../core/kafka.ts';
import { openLake } from '../../platform/lake.ts';
import { createObjectStore } from '../../core/object-store.ts';
import { createRedis } from '../../core/redis.ts';
import { createRegistry } from '../../core/registry.ts';
import { createS3 } from '../../core/s3.ts';
import { sleep } from '../../core/retry.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { startJobProcess, type JobProcess } from '../../scripts/pipeline-process.ts';
import { applyInfra } from '../apply.ts';
import { dropNamespace } from '../namespace.ts';
import { topicsFor } from '../topics.ts';
import type { ChaosRow } from './harness.ts';

export const recreateScenario = {
  id: 'recreate',
  name: 'topic deleted and recreated under a running lake sink (seed 004)',
  expected: 'detected and reported with topic and partitions; never skips or re-reads; sink:reset resumes',
};

const SINK = 'transactions-job-backup';

/**
 * Seed 004's accident as an experiment: the backup sink archives a first topic; the topic is
 * deleted and created again and gets new records; the sink must stop, naming the topic and its
 * partitions, with the lake untouched; a restart must refuse too; after `sink:reset` the lake must
 * hold the first topic's records and every new one, each once. Its own verdict: the first topic's
 * records that were not archived before the deletion are gone with the topic, by the operator's
 * hand, so the general "0 lost" count does not apply.
 */
export async function runRecreateExperiment(config: Config, options: { first?: number; second?: number; log?: (message: string) => void } = {}): Promise<ChaosRow> {
  const log = options.log ?? (() => {});
  const first = options.first ?? 1_500;
  // more new records than old: the new log ends past the lake's offsets, so only the topic id or the
  // offsets going back can tell
  const second = options.second ?? 3_000;
  const namespace = `chaos-recreate-${Date.now().toString(36)}`;
  const names = catalog(namespace);
  const topic = names.topic.transactions;
  const admin = createAdmin(config, 'lakestream-chaos');
  const registry = createRegistry(config);
  const notes: string[] = [];
  const missed: string[] = [];
  const jobs: JobProcess[] = [];
  const startSink = () => {
    const job = startJobProcess([SINK], ['--namespace', namespace, '--flush-interval-ms', '1000']);
    jobs.push(job);
    return job;
  };
  const exited = (job: JobProcess, timeoutMs: number) =>
    new Promise<number | null | 'running'>((resolve) => {
      if (job.child.exitCode !== null) return resolve(job.child.exitCode);
      const timer = setTimeout(() => resolve('running'), timeoutMs);
      job.child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  const lakeRows = async () => {
    const lake = await openLake(config, namespace);
    try {
      const [row] = (await lake.connection.runAndReadAll('SELECT count(*)::INTEGER AS n, count(DISTINCT (user_id, transaction_timestamp_millis, amount, counterpart_id))::INTEGER AS distinct_rows FROM transactions')).getRowObjectsJS();
      return { n: Number(row!.n), distinctRows: Number(row!.distinct_rows) };
    } catch {
      return { n: 0, distinctRows: 0 };
    } finally {
      lake.close();
    }
  };
  const waitForRows = async (rows: number, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await lakeRows()).n >= rows) return true;
      await sleep(1_000);
    }
    return false;
  };
  let acknowledged = 0;
  const send = async (n: number, seed: number) => {
    const producer = await createTransactionsProducer(config, { topic });
    try {
      // counterpart ids tell the two topics' records apart (the generator repeats itself per seed)
      const next = createTransactionGenerator({ users: 200, seed, spreadDays: 0 });
      const outcome = await producer.send(Array.from({ length: n }, (_, i) => ({ ...next(), counterpart_id: seed * 1_000_000 + i })));
      acknowledged += outcome.sent;
    } finally {
      await producer.close();
    }
  };

  let recoverSeconds: number | undefined;
  try {
    await applyInfra(topicsFor(namespace), { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
    let sink = startSink();
    await send(first, 1);
    if (!(await waitForRows(first, 120_000))) missed.push(`the first ${first} records did not reach the lake`);
    log(`${first} records archived; deleting and recreating ${topic}`);

    const topicId = async () => (await admin.metadata({ topics: [topic], forceUpdate: true }).catch(() => undefined))?.topics.get(topic)?.id;
    const oldId = await topicId();
    // The sink paused through the recreation and the new records (as a long GC pause would): it
    // then reads on from its old positions in a topic that already holds more records there, so
    // no offset goes back on most partitions and only the topic id tells (a CI run hit this
    // without the pause).
    process.kill(sink.child.pid!, 'SIGSTOP');
    await admin.deleteTopics({ topics: [topic] });
    for (let i = 0; i < 120 && (await admin.listTopics()).includes(topic); i++) await sleep(500);
    await applyInfra(topicsFor(namespace).filter((spec) => spec.name === topic), { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
    // produce only once the brokers serve the new topic, so no record lands in the old one
    for (let i = 0; i < 120; i++) {
      const id = await topicId();
      if (id && id !== oldId) break;
      await sleep(500);
    }
    notes.push(`topic id ${oldId} replaced`);
    await send(second, 2).finally(() => process.kill(sink.child.pid!, 'SIGCONT'));

    const code = await exited(sink, 120_000);
    // the reason as the job failed with it, after whatever step it failed in ("a flush to the lake failed: ")
    const reason = sink.output().match(/"error":"(?:[^"]*?: )?(topic [^"]*? under this job \([^)]*\))/)?.[1];
    if (code === 1 && reason) notes.push(`running sink stopped: ${reason}`);
    else missed.push(code === 'running' ? 'the running sink did not notice within 2 min' : `the sink exited ${code} without naming the recreated topic`);
    const afterStop = await lakeRows();
    if (afterStop.n !== first) missed.push(`the lake changed after the recreation: ${afterStop.n} rows instead of ${first}`);

    sink = startSink();
    const again = await exited(sink, 60_000);
    const refusal = sink.output().match(/partition \d+: the table's offsets \(up to \d+\) belong to topic id/);
    if (again === 1 && refusal) notes.push("a restart refused too (the table's snapshot names the old topic id)");
    else missed.push(`a restart did not refuse (${again})`);

    const resetStarted = performance.now();
    const reset = await new Promise<{ code: number | null; output: string }>((resolve) =>
      execFile(process.execPath, ['--import', 'tsx', join(repoRoot, 'sinks', 'lake', 'reset-cli.ts'), SINK, '--namespace', namespace, '--yes'], { cwd: repoRoot, env: process.env }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` }),
      ),
    );
    if (reset.code !== 0) missed.push(`sink:reset failed: ${reset.output.trim().split('\n').at(-1)}`);
    sink = startSink();
    if (await waitForRows(first + second, 120_000)) recoverSeconds = (performance.now() - resetStarted) / 1000;
    await sleep(3_000);
    await sink.terminate();
    const final = await lakeRows();
    if (final.n !== first + second) missed.push(`after sink:reset the lake holds ${final.n} rows, expected ${first} + ${second}`);
    notes.push(`after sink:reset: ${final.n} rows (${first} of the first topic + ${second} of the new one)`);
    return {
      scenario: recreateScenario.name,
      expected: recreateScenario.expected,
      producer: { sent: first + second, acknowledged, failed: new Map(), retries: 0, maxAckMs: 0, blockedSeconds: 0 },
      inLake: final.n,
      duplicates: final.n - final.distinctRows,
      lost: Math.max(0, acknowledged - final.n),
      storedUnacknowledged: 0,
      inFeatures: final.n,
      featuresExact: true,
      recoverSeconds,
      notes,
      met: missed.length === 0 && final.n === final.distinctRows,
      missed: final.n === final.distinctRows ? missed : [...missed, `${final.n - final.distinctRows} duplicate rows`],
    };
  } finally {
    await Promise.all(jobs.map((job) => job.kill9()));
    if (missed.length) {
      const dir = join(config.LAKESTREAM_STACK_DIR, 'chaos', namespace);
      mkdirSync(dir, { recursive: true });
      jobs.forEach((job, i) => writeFileSync(join(dir, `${i}-${SINK}.log`), job.output()));
      notes.push(`job logs in ${dir}`);
    }
    const redis = createRedis(config);
    const s3 = createS3(config);
    await dropNamespace(config, namespace, { admin, objectStore: createObjectStore(s3, config.LAKE_BUCKET), redis }).catch(() => {});
    s3.destroy();
    await redis.quit().catch(() => redis.disconnect());
    await admin.close();
  }
}
