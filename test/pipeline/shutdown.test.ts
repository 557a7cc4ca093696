import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from './fixture.ts';

test('SIGTERM flushes what a job buffers, commits and exits cleanly', { timeout: 180_000 }, async (t) => {
  const { namespace, names, count } = await setupPipeline(t, 'sigterm');
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  await producer.send(Array.from({ length: 1_000 }, createTransactionGenerator({ users: 20, seed: 5, spreadDays: 0 })));

  // A ten-minute flush interval: only the shutdown can have written these rows.
  const job = spawnJobs(t, ['transactions-job-backup'], ['--namespace', namespace, '--flush-interval-ms', '600000']);
  await waitFor('the job to buffer all 1,000 rows', async () => (/"buffered":1000\b/.test(job.output()) ? true : undefined), 60_000, 500);
  assert.equal(await count('transactions'), 0, 'nothing flushed yet');

  const stoppedAt = Date.now();
  const code = await job.terminate();
  assert.equal(code, 0, job.output().slice(-2_000));
  assert.ok(Date.now() - stoppedAt < 30_000, 'within the bounded shutdown time');
  assert.equal(await count('transactions'), 1_000);
  assert.match(job.output(), /"msg":"stopped".*"rowsWritten":1000/);
});
