import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createAvroDecoder } from '../../../core/avro.ts';
import { readPartitionsToEnd } from '../../../core/changelog.ts';
import { transactionFaults } from '../../../core/kafka-producer.ts';
import { partitionLeaders, stackFaults } from '../../../infra/chaos/stack-faults.ts';
import { createTransactionsProducer } from '../../../ingest/transactions/producer.ts';
import { config, onCleanup, waitFor } from '../../helpers.ts';
import { setupPipeline } from '../../pipeline/fixture.ts';

const USERS = 40;
const PER_USER = 30;

/**
 * The features job of a fresh pipeline, its input producer and its output read back: each
 * user's emitted counts. The transactional fault knobs aim at the job's producer only (the test
 * producer commits in transactions too).
 */
async function countingPipeline(t: TestContext, label: string) {
  const { names, registry, job } = await setupPipeline(t, label);
  onCleanup(t, () => void Object.assign(transactionFaults, { commitAnswersToLose: 0, transactionalIdPrefix: '', before: undefined, commitTimeoutMs: undefined }));
  transactionFaults.transactionalIdPrefix = names.group('transactions-ml-features-job');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const features = job('transactions-ml-features-job');
  const decode = createAvroDecoder(registry);
  const readCounts = async () => {
    const emitted = new Map<number, number[]>();
    await readPartitionsToEnd(config, names.topic.userTransactionCounts, [0, 1, 2, 3, 4, 5], async (message) => {
      const { value } = await decode(message.value);
      const user = Number(value.user_id);
      emitted.set(user, [...(emitted.get(user) ?? []), Number(value.total_transactions_count)]);
    });
    return emitted;
  };
  /** A third of the transactions: ten per user, numbered on from `third * 10`. */
  const sendThird = (third: number) =>
    producer.send(
      Array.from({ length: USERS * 10 }, (_, i) => ({
        user_id: i % USERS,
        transaction_timestamp_millis: 1_700_000_000_000 + third * 10 + Math.floor(i / USERS),
        amount: 1,
        currency: 'EUR',
        counterpart_id: 1,
      })),
    );
  const firstThirdCounted = () => waitFor('the first third counted', async () => ([...(await readCounts()).values()].flat().length >= USERS * 10 ? true : undefined));
  /** Every user's count ends at the number of their transactions, and each count value is emitted once. */
  const assertEachCountOnce = async () => {
    const emitted = await waitFor('every transaction counted', async () => {
      const now = await readCounts();
      return now.size === USERS && [...now.values()].every((counts) => counts.at(-1)! >= PER_USER) ? now : undefined;
    });
    for (let user = 0; user < USERS; user++) {
      const counts = emitted.get(user)!;
      assert.equal(counts.at(-1), PER_USER, `user ${user}'s count: ${counts.join(',')}`);
      assert.deepEqual(counts, Array.from({ length: PER_USER }, (_, i) => i + 1), `user ${user}: each count once, in order`);
    }
  };
  return { names, features, sendThird, firstThirdCounted, assertEachCountOnce };
}

/** Java's String.hashCode, which Kafka uses to place a transactional id in __transaction_state. */
function javaStringHash(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) hash = (Math.imul(31, hash) + text.charCodeAt(i)) | 0;
  return hash;
}

/** The transaction coordinator of `transactionalId`: the leader of its `__transaction_state` partition. */
async function transactionCoordinator(transactionalId: string): Promise<number> {
  const leaders = await partitionLeaders(config, '__transaction_state');
  const hash = javaStringHash(transactionalId);
  // Kafka's Utils.abs: the one int without an absolute value maps to 0
  return leaders[(hash === -2147483648 ? 0 : Math.abs(hash)) % leaders.length]!;
}

/**
 * Pauses the job's transaction coordinator (SIGSTOP, as a long GC pause) just before the first
 * `call` goes out, for `pauseMs`; resolves with what happened once the broker runs again.
 */
function pauseCoordinatorBefore(t: TestContext, call: 'sendOffsetsToTransaction' | 'commitTransaction', pauseMs: number): Promise<{ broker: number; at: number }> {
  const faults = stackFaults(config);
  t.after(() => faults.heal());
  return new Promise((resolve, reject) => {
    transactionFaults.before = async (which, transactionalId) => {
      if (which !== call) return;
      transactionFaults.before = undefined;
      try {
        const broker = await transactionCoordinator(transactionalId);
        faults.pause(`kafka-${broker}`);
        const at = performance.now();
        setTimeout(() => {
          faults.resume(`kafka-${broker}`);
          resolve({ broker, at });
        }, pauseMs);
      } catch (error) {
        reject(error);
      }
    };
  });
}

test('runtime: a committed transaction whose answer was lost is not applied twice', { timeout: 300_000 }, async (t) => {
  const pipeline = await countingPipeline(t, 'commit-lost');
  await pipeline.features.start();
  // the first third counted normally, then the next commit's answer is lost, then the rest
  await pipeline.sendThird(0);
  await pipeline.firstThirdCounted();
  transactionFaults.commitAnswersToLose = 1;
  await pipeline.sendThird(1);
  await waitFor('the lost answer to happen', async () => (transactionFaults.commitAnswersToLose === 0 ? true : undefined));
  await pipeline.sendThird(2);
  await pipeline.assertEachCountOnce();
});

/**
 * Paused for less than the broker session timeout (9 s), so the coordinator does not move: a
 * longer pause gets the broker fenced and its leaderships moved, after which a CI run saw the next
 * transaction's sendOffsetsToTransaction never return (librdkafka#5511; the guard replaced the
 * producer, and the stuck native call kept the test process from exiting).
 */
test('runtime: a commit that times out while its coordinator is paused is resumed, not aborted or replayed, on the real cluster', { timeout: 300_000 }, async (t) => {
  const pipeline = await countingPipeline(t, 'commit-paused');
  // the commit's own timeout shorter than the pause: librdkafka reports it timed out, still resumable
  transactionFaults.commitTimeoutMs = 2_000;
  await pipeline.features.start();
  await pipeline.sendThird(0);
  await pipeline.firstThirdCounted();
  const paused = pauseCoordinatorBefore(t, 'commitTransaction', 6_000);
  await pipeline.sendThird(1);
  const { broker } = await paused;
  t.diagnostic(`coordinator kafka-${broker} paused 6 s under a commit`);
  await pipeline.sendThird(2);
  await pipeline.assertEachCountOnce();
  const stats = pipeline.features.stats() as unknown as { commitsResumed: number; commitsUnknown: number; producersReplaced: number; transactionsAborted: number; stores: { counts: { restored: number } } };
  t.diagnostic(JSON.stringify(stats));
  assert.ok(stats.commitsResumed >= 1, 'the timed-out commit was resumed by committing again');
  assert.equal(stats.commitsUnknown, 0, 'the commit was never given up as unknown');
  assert.equal(stats.producersReplaced, 0, 'the producer was kept');
  assert.equal(stats.transactionsAborted, 0, 'nothing was aborted');
  assert.equal(stats.stores.counts.restored, 0, 'no state was restored from the changelog: the batch was neither dropped nor replayed');
});
