import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

/**
 * A sink instance paused (SIGSTOP) past its session timeout loses its partitions to a second
 * instance. It comes back, still holding a buffer of the partitions' first records, and flushes
 * before the new owner does: the archive must still end with every record once. (With the
 * partition-state objects of the old lake, the new owner's commit was refused, it dropped its
 * buffer and read on from its position: the records between the two owners' positions were
 * never archived.)
 */
test('lake sink: a paused owner that comes back after a rebalance neither loses nor duplicates a row', { timeout: 420_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'zombie');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  const next = createTransactionGenerator({ users: 200, seed: 11, spreadDays: 0, now: Date.UTC(2026, 10, 20, 12, 30) });
  await producer.send(Array.from({ length: 2_000 }, next));

  // The first owner buffers the 2,000 (it flushes only after 10 s) and is paused at once.
  const zombie = spawnJobs(t, ['transactions-job-backup'], ['--namespace', pipeline.namespace, '--flush-interval-ms', '10000']);
  await waitFor('the first owner to read the records', async () => (zombie.output().includes('"first records"') ? true : undefined), 120_000, 100);
  zombie.child.kill('SIGSTOP');
  onCleanup(t, () => void zombie.child.kill('SIGCONT'));

  // The second owner gets the partitions once the group gives up on the first (45 s session),
  // reads everything, and holds it for 60 s before flushing.
  const owner = pipeline.job('transactions-job-backup', { flushIntervalMs: 60_000 });
  await owner.start();
  await producer.send(Array.from({ length: 1_000 }, next));
  await waitFor('the second owner to hold all 3,000 records', async () => ((owner.stats() as { buffered?: number }).buffered === 3_000 ? true : undefined), 180_000, 500);

  // The first owner resumes and flushes its 2,000 first; then the second owner's flush comes.
  zombie.child.kill('SIGCONT');
  assert.equal(await pipeline.waitForCount('transactions', 3_000, 180_000, 1_000), 3_000);
  await owner.stop();
  await zombie.terminate();
  assert.equal(await pipeline.count('transactions'), 3_000, 'every record once');
  const duplicates = await pipeline.query('SELECT user_id, transaction_timestamp_millis, amount, counterpart_id FROM transactions GROUP BY ALL HAVING count(*) > 1');
  assert.equal(duplicates.length, 0, 'no record twice');
});
