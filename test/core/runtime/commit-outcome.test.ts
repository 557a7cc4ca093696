import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAvroDecoder } from '../../../core/avro.ts';
import { readPartitionsToEnd } from '../../../core/changelog.ts';
import { transactionFaults } from '../../../core/kafka-producer.ts';
import { createTransactionsProducer } from '../../../ingest/transactions/producer.ts';
import { config, onCleanup, waitFor } from '../../helpers.ts';
import { setupPipeline } from '../../pipeline/fixture.ts';

/**
 * A commit that reaches the broker and succeeds there, whose answer is then lost (the producer
 * reports a timeout): the features job must not apply the same batch again on top of the state
 * its changelog restores, which already holds it. Every user's count ends at the number of their
 * transactions, and each count value is emitted once.
 */
test('runtime: a committed transaction whose answer was lost is not applied twice', { timeout: 300_000 }, async (t) => {
  const { names, registry, job } = await setupPipeline(t, 'commit-lost');
  onCleanup(t, () => void Object.assign(transactionFaults, { commitAnswersToLose: 0, transactionalIdPrefix: '' }));
  // the job's commits, not the test producer's (which commits in transactions too)
  transactionFaults.transactionalIdPrefix = names.group('transactions-ml-features-job');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const users = 40;
  const perUser = 30;
  const event = (user: number, n: number) => ({ user_id: user, transaction_timestamp_millis: 1_700_000_000_000 + n, amount: 1, currency: 'EUR', counterpart_id: 1 });

  const features = job('transactions-ml-features-job');
  await features.start();
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

  // the first third counted normally, then the next commit's answer is lost, then the rest
  await producer.send(Array.from({ length: users * 10 }, (_, i) => event(i % users, Math.floor(i / users))));
  await waitFor('the first third counted', async () => ([...(await readCounts()).values()].flat().length >= users * 10 ? true : undefined));
  transactionFaults.commitAnswersToLose = 1;
  await producer.send(Array.from({ length: users * 10 }, (_, i) => event(i % users, 10 + Math.floor(i / users))));
  await waitFor('the lost answer to happen', async () => (transactionFaults.commitAnswersToLose === 0 ? true : undefined));
  await producer.send(Array.from({ length: users * 10 }, (_, i) => event(i % users, 20 + Math.floor(i / users))));

  const emitted = await waitFor('every transaction counted', async () => {
    const now = await readCounts();
    const done = [...now.values()].every((counts) => counts.at(-1)! >= perUser) && now.size === users;
    return done ? now : undefined;
  });
  for (let user = 0; user < users; user++) {
    const counts = emitted.get(user)!;
    assert.equal(counts.at(-1), perUser, `user ${user}'s count: ${counts.join(',')}`);
    assert.deepEqual(counts, Array.from({ length: perUser }, (_, i) => i + 1), `user ${user}: each count once, in order`);
  }
});
