import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, spawnJobs, waitFor, type JobProcess } from '../helpers.ts';
import { setupPipeline } from './fixture.ts';

/** Every partition of the transactions topic (six in the catalog). */
const PARTITIONS = 6;

/** The partitions a job process was last assigned, from its log; undefined before any assignment. */
function lastAssignment(job: JobProcess): number[] | undefined {
  const last = [...job.output().matchAll(/"msg":"partitions assigned".*?"partitions":\[([\d,]*)\]/g)].at(-1);
  return last ? last[1]!.split(',').filter(Boolean).map(Number) : undefined;
}

/** Seconds from `since` until `job` logs an assignment of `partitions` partitions. */
async function secondsUntilAssigned(job: JobProcess, partitions: number, since: number, what: string): Promise<number> {
  await waitFor(what, async () => (lastAssignment(job)?.length === partitions ? true : undefined), 120_000, 100);
  return (Date.now() - since) / 1000;
}

test('static membership: a job restarted after kill -9 takes its partitions back without waiting out the 45 s session', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'static-restart');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  const next = createTransactionGenerator({ users: 100, seed: 31, spreadDays: 0 });
  const args = ['--namespace', pipeline.namespace, '--flush-interval-ms', '1000', '--instance', '0'];

  await producer.send(Array.from({ length: 1_000 }, next));
  const first = spawnJobs(t, ['transactions-job-backup'], args);
  await pipeline.waitForCount('transactions', 1_000);
  await first.kill9();

  await producer.send(Array.from({ length: 1_000 }, next));
  const restartedAt = Date.now();
  const second = spawnJobs(t, ['transactions-job-backup'], args);
  const seconds = await secondsUntilAssigned(second, PARTITIONS, restartedAt, 'the restarted job to get its partitions');
  t.diagnostic(`restart after kill -9: partitions back after ${seconds.toFixed(1)} s (session timeout 45 s)`);
  // a dynamic member waits for the dead one's session to expire: 45 s after its last heartbeat
  assert.ok(seconds < 30, `partitions back after ${seconds.toFixed(1)} s, not after the session timeout\n${second.output().slice(-3_000)}`);
  assert.equal(await pipeline.waitForCount('transactions', 2_000), 2_000);
  assert.equal(await second.terminate(), 0);
  assert.equal(await pipeline.count('transactions'), 2_000, 'every record once');
});

test('static membership: an instance that stops cleanly hands its partitions over at once; a second process with its id is refused', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'static-leave');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  const next = createTransactionGenerator({ users: 100, seed: 32, spreadDays: 0 });
  const args = (instance: string) => ['--namespace', pipeline.namespace, '--flush-interval-ms', '1000', '--instance', instance];

  const zero = spawnJobs(t, ['transactions-job-backup'], args('0'));
  await secondsUntilAssigned(zero, PARTITIONS, Date.now(), 'instance 0 to get every partition');
  const one = spawnJobs(t, ['transactions-job-backup'], args('1'));
  await waitFor('both instances to own a share', async () => ((lastAssignment(one)?.length ?? 0) > 0 && (lastAssignment(zero)?.length ?? 0) < PARTITIONS ? true : undefined), 120_000, 100);
  await producer.send(Array.from({ length: 1_000 }, next));
  await pipeline.waitForCount('transactions', 1_000);

  // a static member's own close sends no LeaveGroup: without the job's leave, instance 0 would
  // wait out instance 1's session before taking its partitions
  const stoppedAt = Date.now();
  assert.equal(await one.terminate(), 0, one.output().slice(-3_000));
  const seconds = await secondsUntilAssigned(zero, PARTITIONS, stoppedAt, 'instance 0 to take every partition back');
  t.diagnostic(`clean stop of instance 1: instance 0 owns every partition ${seconds.toFixed(1)} s later`);
  assert.ok(seconds < 30, `handed over after ${seconds.toFixed(1)} s, not after the session timeout`);
  await producer.send(Array.from({ length: 1_000 }, next));
  assert.equal(await pipeline.waitForCount('transactions', 2_000), 2_000);

  // two processes under one id would fence each other in turn; the older one stops and says why
  const impostor = spawnJobs(t, ['transactions-job-backup'], args('0'));
  const code = await waitFor('instance 0 to stop, fenced by the second process with its id', async () => zero.child.exitCode ?? undefined, 120_000, 200).catch((error: unknown) => {
    const events = (job: JobProcess) => job.output().split('\n').filter((line) => !/"msg":"(stats|memory)"/.test(line)).slice(-40).join('\n');
    console.error(`instance 0:\n${events(zero)}\nthe second process:\n${events(impostor)}`);
    throw error;
  });
  assert.notEqual(code, 0);
  assert.match(zero.output(), /another process joined group .* as instance 0 .*give each process of a job its own --instance/);
  // a fenced job is started again once (a coordinator stall can fence a member by its own
  // abandoned join), which fences the newer process in turn; that one's single restart takes
  // the id back for good, and the older process, fenced again within the window, stops
  const restarts = (job: JobProcess) => job.output().split('\n').filter((line) => line.includes('"msg":"fenced as a static member; starting the job again once')).length;
  t.diagnostic(`restarts after a fence: instance 0 ${restarts(zero)}, the second process ${restarts(impostor)}`);
  assert.equal(restarts(zero), 1, 'the older process tried once, then stopped');
  await producer.send(Array.from({ length: 1_000 }, next));
  assert.equal(await pipeline.waitForCount('transactions', 3_000), 3_000, 'the newer process goes on');
  assert.equal(await impostor.terminate(), 0);
  assert.equal(await pipeline.count('transactions'), 3_000, 'every record once');
});
