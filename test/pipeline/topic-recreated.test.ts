import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyInfra } from '../../infra/apply.ts';
import { topicsFor } from '../../infra/topics.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, runCliFile, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from './fixture.ts';

/**
 * Seed 004's accident: the topic is deleted and created again while its lake sink runs. The sink
 * must neither skip the new records (its state holds the old offsets) nor re-read silently: it
 * stops, naming the topic and partitions, and after the documented `sink:reset` it archives the
 * new topic from its start, every record once.
 */
test('a topic deleted and recreated under a running lake sink stops it loudly; sink:reset resumes with every new record once', { timeout: 420_000 }, async (t) => {
  const { namespace, names, admin, registry, count, waitForCount } = await setupPipeline(t, 'recreate');
  const jobArgs = ['--namespace', namespace, '--flush-interval-ms', '1000'];
  const send = async (n: number, seed: number) => {
    const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
    try {
      const outcome = await producer.send(Array.from({ length: n }, createTransactionGenerator({ users: 200, seed, spreadDays: 0 })));
      assert.equal(outcome.sent, n);
    } finally {
      await producer.close();
    }
  };

  let sink = spawnJobs(t, ['transactions-job-backup'], jobArgs);
  await send(3_000, 1);
  assert.equal(await waitForCount('transactions', 3_000), 3_000);

  // delete and create again, then write fewer records than before (each partition's new log ends
  // below what the lake holds) and a few more: the topic id tells them apart either way
  await admin.deleteTopics({ topics: [names.topic.transactions] });
  await waitFor('the topic gone', async () => ((await admin.listTopics()).includes(names.topic.transactions) ? undefined : true), 60_000, 500);
  await applyInfra(topicsFor(namespace).filter((spec) => spec.name === names.topic.transactions), { admin, registry, registryUrl: config.SCHEMA_REGISTRY_URL });
  await send(1_000, 2);

  const exit = await new Promise<number | null>((resolve) => (sink.child.exitCode !== null ? resolve(sink.child.exitCode) : sink.child.once('exit', resolve)));
  assert.equal(exit, 1, 'the running sink stops');
  assert.match(sink.output(), new RegExp(`topic ${names.topic.transactions.replace('.', '\\.')} was deleted and recreated or truncated under this job \\(partition \\d`));
  assert.match(sink.output(), /sink:reset/);
  assert.equal(await count('transactions'), 3_000, 'nothing of the new topic was written on top of the old offsets');

  // started again, it refuses at once for the same reason (the lake's state names the old topic)
  sink = spawnJobs(t, ['transactions-job-backup'], jobArgs);
  assert.equal(await new Promise<number | null>((resolve) => sink.child.once('exit', resolve)), 1);
  assert.match(sink.output(), /belong to topic id .* the topic now has id/);

  const dryRun = await runCliFile('sinks/lake/reset-cli.ts', ['transactions-job-backup', '--namespace', namespace]);
  assert.equal(dryRun.status, 0, dryRun.stderr);
  assert.match(dryRun.stdout, /6 partition state file\(s\).*\n.*dry run/);
  const reset = await runCliFile('sinks/lake/reset-cli.ts', ['transactions-job-backup', '--namespace', namespace, '--yes']);
  assert.equal(reset.status, 0, reset.stderr);

  sink = spawnJobs(t, ['transactions-job-backup'], jobArgs);
  assert.equal(await waitForCount('transactions', 4_000), 4_000, 'the old 3,000 and the new 1,000, each once');
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  assert.equal(await count('transactions'), 4_000);
  assert.equal(await sink.terminate(), 0);
});
