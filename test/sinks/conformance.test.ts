import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { avroCodec } from '../../core/avro.ts';
import { readPartitionsToEnd } from '../../core/changelog.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { getUserFeatures } from '../../features/online-store.ts';
import { stackFaults } from '../../infra/chaos/stack-faults.ts';
import { config, onCleanup, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

/**
 * One suite, every sink: the lake sink (Iceberg table) and the Redis sink (online features), both
 * fed the same feature topic, each held to the same promises. Per user the topic carries the
 * counts 1..COUNTS in order; at the end the lake holds each (user, count) exactly once and Redis
 * holds each user's last count, whatever happened on the way.
 */
const USERS = 100;
const COUNTS = 60;

interface SinkUnderTest {
  job: 'user-transaction-counts-lake-sink' | 'user-transaction-counts-redis-sink';
  /** The daemon of the stack the sink writes to. */
  target: 'minio' | 'redis';
  /** Null while the target holds everything; else what is still missing or wrong. */
  check(pipeline: Pipeline, through: number): Promise<string | null>;
}
type Pipeline = Awaited<ReturnType<typeof setupPipeline>>;

const lakeSink: SinkUnderTest = {
  job: 'user-transaction-counts-lake-sink',
  target: 'minio',
  async check(pipeline, through) {
    const rows = await pipeline.query<{ user_id: string; total_transactions_count: string; copies: string }>(
      'SELECT user_id, total_transactions_count, count(*) AS copies FROM user_transaction_counts GROUP BY ALL',
    );
    const duplicated = rows.filter((row) => Number(row.copies) > 1);
    if (duplicated.length) throw new Error(`duplicated in the lake: ${JSON.stringify(duplicated.slice(0, 5))}`);
    const expected = USERS * through;
    return rows.length === expected ? null : `${rows.length} of ${expected} rows`;
  },
};

const redisSink: SinkUnderTest = {
  job: 'user-transaction-counts-redis-sink',
  target: 'redis',
  async check(pipeline, through) {
    const users = Array.from({ length: USERS }, (_, user) => user);
    const found = await getUserFeatures(pipeline.redis, users, pipeline.names.features.userTransactionCounts.redisPrefix);
    const behind = found.filter((features) => features?.total_transactions_count !== through);
    const ahead = found.filter((features) => (features?.total_transactions_count ?? 0) > through);
    if (ahead.length) throw new Error(`counts beyond what was sent: ${JSON.stringify(ahead.slice(0, 3))}`);
    return behind.length ? `${behind.length} of ${USERS} users not at ${through}` : null;
  },
};

async function fixture(t: TestContext, sink: SinkUnderTest, label: string) {
  const pipeline = await setupPipeline(t, label);
  const topic = pipeline.names.topic.userTransactionCounts;
  const codec = await avroCodec(pipeline.registry, await pipeline.registry.getLatestSchemaId(`${topic}-value`));
  const raw = createProducer(config, 'lakestream-test-conformance');
  await raw.connect();
  onCleanup(t, () => raw.disconnect());
  /** Every user's counts from `from` to `to`, in order per user (one key, one partition). */
  const send = async (from: number, to: number, extra: Array<{ key: string; value: Buffer }> = []) => {
    const messages = [];
    for (let count = from; count <= to; count++) {
      for (let user = 0; user < USERS; user++) messages.push({ key: String(user), value: codec.encode({ user_id: user, total_transactions_count: count, event_timestamp_millis: 1_000_000 + count }) });
    }
    await raw.send({ topic, messages: [...messages.slice(0, messages.length / 2), ...extra, ...messages.slice(messages.length / 2)] });
  };
  const settled = (through: number, timeoutMs = 150_000) =>
    waitFor(`${sink.job} holding counts 1..${through} of every user`, async () => ((await sink.check(pipeline, through)) === null ? true : undefined), timeoutMs, 1_000);
  const jobArgs = ['--namespace', pipeline.namespace, '--flush-interval-ms', '500'];
  return { pipeline, topic, send, settled, jobArgs };
}

for (const sink of [lakeSink, redisSink]) {
  const label = sink.target === 'minio' ? 'lake' : 'redis';

  test(`sink conformance, ${sink.job}: kill -9 mid-stream and a restart lose and duplicate nothing`, { timeout: 400_000 }, async (t) => {
    const { send, settled, jobArgs } = await fixture(t, sink, `conform-kill-${label}`);
    await send(1, COUNTS / 2);
    const first = spawnJobs(t, [sink.job], jobArgs);
    await settled(COUNTS / 2);
    // killed while it reads and writes the next half: what it buffered or had not committed is
    // read again (the lake sink flushes every 500 ms, so it is always mid-way; the Redis sink may
    // have written it all by then, and the restart must then add nothing)
    await send(COUNTS / 2 + 1, COUNTS);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await first.kill9();
    spawnJobs(t, [sink.job], jobArgs);
    await settled(COUNTS, 240_000);
  });

  test(`sink conformance, ${sink.job}: a poison record goes to the dead-letter topic with its reason and the sink goes on`, { timeout: 300_000 }, async (t) => {
    const { pipeline, topic, send, settled } = await fixture(t, sink, `conform-poison-${label}`);
    await send(1, COUNTS, [{ key: '7', value: Buffer.from('not avro at all') }]);
    await pipeline.job(sink.job, { flushIntervalMs: 500 }).start();
    await settled(COUNTS);
    const letters: Array<{ value: Buffer | null; reason: string | undefined }> = [];
    await readPartitionsToEnd(config, pipeline.names.deadLetterTopic(topic), [0], (message) => {
      const reason = message.headers?.flatMap((header) => Object.entries(header)).find(([name]) => name === 'dlq.reason')?.[1];
      letters.push({ value: message.value ?? null, reason: reason?.toString() });
    });
    assert.deepEqual(letters, [{ value: Buffer.from('not avro at all'), reason: 'magic-byte' }]);
  });

  test(`sink conformance, ${sink.job}: an outage of its target (${sink.target} killed) is waited out, then everything lands once`, { timeout: 400_000 }, async (t) => {
    const { pipeline, send, settled } = await fixture(t, sink, `conform-outage-${label}`);
    const faults = stackFaults(config);
    let healed = true;
    onCleanup(t, () => (healed ? undefined : faults.heal()));
    await pipeline.job(sink.job, { flushIntervalMs: 500 }).start();
    await send(1, 10);
    await settled(10);
    healed = false;
    faults.kill(sink.target);
    await send(11, COUNTS);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    await faults.heal();
    healed = true;
    await settled(COUNTS, 240_000);
  });

  test(`sink conformance, ${sink.job}: a second instance joining mid-stream (a rebalance) loses and duplicates nothing`, { timeout: 300_000 }, async (t) => {
    const { pipeline, send, settled } = await fixture(t, sink, `conform-rebalance-${label}`);
    await pipeline.job(sink.job, { flushIntervalMs: 500 }).start();
    // a round of counts every 150 ms, so records keep coming while the group rebalances
    const sending = (async () => {
      for (let count = 1; count <= COUNTS; count++) {
        await send(count, count);
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const second = pipeline.job(sink.job, { flushIntervalMs: 500 });
    await second.start();
    await sending;
    await settled(COUNTS);
    assert.ok(second.stats().recordsIn > 0, 'the second instance took partitions and wrote');
  });
}
