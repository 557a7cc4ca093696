import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { readPartitionsToEnd } from '../../core/changelog.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { partitionLeaders } from '../../infra/chaos/stack-faults.ts';
import { runningPid } from '../../infra/stack/processes.ts';
import { cleanupTopics, config, onCleanup, testAdmin, uniqueName } from '../helpers.ts';

/**
 * A transactional changelog ends with a commit marker, which is never delivered: a restore that
 * waits for its position to reach the high watermark never gets there. The restore must end on
 * the partition's end-of-partition event, not on a second of empty polls, which a fetch stall
 * mid-log (here: the partition leader paused for 4 s) would mistake for the end.
 */
test('changelog: a restore reads every record of a transactional changelog, through a 4 s stall of the partition leader', { timeout: 300_000 }, async (t) => {
  const topic = uniqueName('changelog-stall');
  const admin = testAdmin(t);
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: Math.min(3, config.KAFKA_BROKERS.length) });
  cleanupTopics(t, admin, [topic]);

  // Enough bytes that the restore's prefetch cannot hold them all when the stall begins.
  const transactions = 4;
  const perTransaction = 50_000;
  const producer = createProducer(config, 'lakestream-test-changelog', { transactionalId: uniqueName('changelog-stall-tx'), compression: 'none' });
  await producer.connect();
  for (let i = 0; i < transactions; i++) {
    const transaction = await producer.transaction();
    await transaction.send({ topic, messages: Array.from({ length: perTransaction }, (_, n) => ({ key: `k${i * perTransaction + n}`, value: randomBytes(200) })) });
    await transaction.commit();
  }
  await producer.disconnect();

  const [leader] = await partitionLeaders(config, topic);
  const pid = runningPid(config.LAKESTREAM_STACK_DIR, `kafka-${leader}`);
  assert.ok(pid, `the pid of kafka-${leader}`);
  let paused = false;
  const resume = () => {
    if (paused) process.kill(pid, 'SIGCONT');
    paused = false;
  };
  onCleanup(t, resume);

  let read = 0;
  const started = Date.now();
  const counts = await readPartitionsToEnd(config, topic, [0], () => {
    if (++read === 1) {
      process.kill(pid, 'SIGSTOP');
      paused = true;
      setTimeout(resume, 4_000);
    }
  });
  resume();
  assert.equal(read, transactions * perTransaction, `records read in ${Date.now() - started} ms`);
  assert.equal(counts.get(0), transactions * perTransaction);
});

test('changelog: a restore of a partition holding only an aborted transaction ends at once, empty', { timeout: 120_000 }, async (t) => {
  const topic = uniqueName('changelog-aborted');
  const admin = testAdmin(t);
  await admin.createTopics({ topics: [topic], partitions: 2, replicas: Math.min(3, config.KAFKA_BROKERS.length) });
  cleanupTopics(t, admin, [topic]);
  const producer = createProducer(config, 'lakestream-test-changelog', { transactionalId: uniqueName('changelog-aborted-tx') });
  await producer.connect();
  const aborted = await producer.transaction();
  await aborted.send({ topic, messages: [{ key: 'a', value: 'x', partition: 0 }] });
  await aborted.abort();
  const committed = await producer.transaction();
  await committed.send({ topic, messages: [{ key: 'b', value: 'y', partition: 1 }] });
  await committed.commit();
  await producer.disconnect();

  const seen: string[] = [];
  const started = Date.now();
  const counts = await readPartitionsToEnd(config, topic, [0, 1], (message) => void seen.push(message.key!.toString()));
  assert.deepEqual(seen, ['b']);
  assert.deepEqual([...counts], [[0, 0], [1, 1]]);
  // the end-of-partition events say it, not a timer
  assert.ok(Date.now() - started < 3_000, `ended after ${Date.now() - started} ms`);
});
