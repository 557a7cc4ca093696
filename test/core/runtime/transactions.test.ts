import assert from 'node:assert/strict';
import { test } from 'node:test';
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { LakestreamError } from '../../../core/errors.ts';
import type { TransactionalProducer } from '../../../core/kafka-producer.ts';
import { createLogger } from '../../../core/log.ts';
import { createTransactionManager, TransactionOutcomeUnknown } from '../../../core/runtime/transactions.ts';

// The state machine alone, over a scripted producer: which call fails how is the test's choice.
const { ERRORS } = kafkaJavascript.CODES;
const kafkaError = (code: number, isFatal = false, isTxnRequiresAbort = false, isRetriable = false) => Object.assign(new Error(`librdkafka error ${code}`), { code, isFatal, isTxnRequiresAbort, isRetriable });

function scripted() {
  const calls: string[] = [];
  const failures = new Map<string, unknown[]>();
  let made = 0;
  const fail = (call: string, ...errors: unknown[]) => failures.set(call, [...(failures.get(call) ?? []), ...errors]);
  const newProducer = async (): Promise<TransactionalProducer> => {
    const id = ++made;
    const step = (call: string) => async () => {
      calls.push(`${call}#${id}`);
      const error = failures.get(call)?.shift();
      if (error) throw error;
    };
    return { begin: step('begin'), produce: step('produce'), sendOffsets: step('sendOffsets'), commit: step('commit'), abort: step('abort'), close: step('close'), brokersUp: () => true };
  };
  return { calls, fail, newProducer, made: () => made };
}

const log = createLogger('test');
const work = async (producer: TransactionalProducer) => {
  await producer.produce('out', { key: null, value: null });
};

test('transactions: a committed transaction leaves the producer ready', async () => {
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
  await manager.start();
  assert.equal(manager.state, 'ready');
  assert.ok((await manager.run({ work })) >= 0);
  assert.deepEqual(s.calls, ['begin#1', 'produce#1', 'commit#1']);
  assert.equal(manager.state, 'ready');
});

test('transactions: a transient failure aborts, tells the handler, and comes back retriable on the same producer', async () => {
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
  await manager.start();
  s.fail('produce', kafkaError(ERRORS.ERR__TRANSPORT));
  let aborted = 0;
  const error = await manager.run({ work, aborted: () => aborted++ }).catch((e: unknown) => e);
  assert.ok(error instanceof LakestreamError && error.retriable, 'retriable');
  assert.equal(aborted, 1);
  assert.equal(manager.state, 'ready');
  await manager.run({ work });
  assert.equal(s.made(), 1, 'no new producer for a transient failure');
});

test('transactions: an abort that failed is done before the next begin', async () => {
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
  await manager.start();
  s.fail('commit', kafkaError(ERRORS.ERR__TIMED_OUT, false, true));
  s.fail('abort', kafkaError(ERRORS.ERR__TRANSPORT));
  await assert.rejects(manager.run({ work }));
  assert.equal(manager.state, 'abort-pending');
  s.calls.length = 0;
  await manager.run({ work });
  assert.deepEqual(s.calls, ['abort#1', 'begin#1', 'produce#1', 'commit#1']);
});

test('transactions: a fatal error replaces the producer before the next transaction', async () => {
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
  await manager.start();
  s.fail('sendOffsets', kafkaError(ERRORS.ERR__STATE, true));
  const error = await manager
    .run({
      work: async (producer) => {
        await producer.sendOffsets([], undefined as never);
      },
    })
    .catch((e: unknown) => e);
  assert.ok(error instanceof LakestreamError && error.retriable, 'the batch is retried on a new producer');
  assert.equal(manager.state, 'broken');
  s.calls.length = 0;
  await manager.run({ work });
  assert.deepEqual(s.calls, ['close#1', 'begin#2', 'produce#2', 'commit#2']);
});

test('transactions: fenced three times within the window fails for good; fences that old are forgotten', async () => {
  let clock = 0;
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log, now: () => clock, fenceWindowMs: 60_000 });
  await manager.start();
  const fenced = () => s.fail('begin', kafkaError(ERRORS.ERR_PRODUCER_FENCED, true));
  for (const at of [0, 10_000]) {
    clock = at;
    fenced();
    const error = await manager.run({ work }).catch((e: unknown) => e);
    assert.ok(error instanceof LakestreamError && error.retriable, `fence at ${at} ms: retried on a new producer`);
  }
  clock = 100_000;
  fenced();
  const late = await manager.run({ work }).catch((e: unknown) => e);
  assert.ok(late instanceof LakestreamError && late.retriable, 'the first two fences are older than the window');
  clock = 110_000;
  fenced();
  await manager.run({ work }).catch(() => {});
  clock = 120_000;
  fenced();
  const third = await manager.run({ work }).catch((e: unknown) => e);
  assert.ok(third instanceof LakestreamError && !third.retriable, 'three fences in a minute: another process has the id');
  assert.match(third.message, /another process runs with transactional id tx/);
});

test("transactions: the caller's explanation wins, and a handler's own error is not made retriable", async () => {
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
  await manager.start();
  const refused = new LakestreamError('KAFKA_ERROR', 'not authorized');
  s.fail('commit', kafkaError(ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED, false, true));
  await assert.rejects(manager.run({ work, explain: () => refused }), (error) => error === refused);
  const bug = new TypeError('handler bug');
  await assert.rejects(
    manager.run({
      work: async () => {
        throw bug;
      },
    }),
    (error) => error === bug,
  );
  assert.equal(manager.state, 'ready');
});

test('transactions: a commit that failed without being abortable has an unknown outcome: no abort, no retry, the producer settled by a successor', async () => {
  for (const failure of [kafkaError(ERRORS.ERR__TIMED_OUT, true), kafkaError(ERRORS.ERR__TRANSPORT), kafkaError(ERRORS.ERR_NOT_COORDINATOR)]) {
    const s = scripted();
    const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
    await manager.start();
    s.fail('commit', failure);
    let aborted = 0;
    const error = await manager.run({ work, aborted: () => aborted++, explain: () => new LakestreamError('KAFKA_ERROR', 'not this') }).catch((e: unknown) => e);
    assert.ok(error instanceof TransactionOutcomeUnknown, `code ${failure.code}: ${String(error)}`);
    assert.equal(error.retriable, false, 'never retried from memory');
    assert.equal(aborted, 1, 'the handler drops the state the batch changed');
    assert.deepEqual(s.calls, ['begin#1', 'produce#1', 'commit#1'], 'no abort: it would not tell');
    assert.equal(manager.state, 'broken');
    await manager.settle();
    assert.equal(s.made(), 2, 'a successor producer settles the transaction');
    assert.equal(manager.state, 'ready');
  }
});

test('transactions: a commit librdkafka calls abortable did not happen: aborted and retriable', async () => {
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
  await manager.start();
  s.fail('commit', kafkaError(ERRORS.ERR__TIMED_OUT, false, true));
  const error = await manager.run({ work }).catch((e: unknown) => e);
  assert.ok(error instanceof LakestreamError && error.retriable && !(error instanceof TransactionOutcomeUnknown));
  assert.deepEqual(s.calls, ['begin#1', 'produce#1', 'commit#1', 'abort#1']);
  assert.equal(manager.state, 'ready');
});

test('transactions: a commit librdkafka calls retriable is resumed by committing again, never aborted', async () => {
  const s = scripted();
  const manager = createTransactionManager({ transactionalId: 'tx', newProducer: s.newProducer, log });
  await manager.start();
  s.fail('commit', kafkaError(ERRORS.ERR__TIMED_OUT, false, false, true), kafkaError(ERRORS.ERR_NOT_COORDINATOR, false, false, true));
  await manager.run({ work });
  assert.deepEqual(s.calls, ['begin#1', 'produce#1', 'commit#1', 'commit#1', 'commit#1']);
  assert.equal(manager.state, 'ready');
  assert.equal(s.made(), 1);

  const stubborn = scripted();
  const limited = createTransactionManager({ transactionalId: 'tx', newProducer: stubborn.newProducer, log, commitRetries: 2 });
  await limited.start();
  stubborn.fail('commit', ...Array.from({ length: 3 }, () => kafkaError(ERRORS.ERR__TIMED_OUT, false, false, true)));
  await assert.rejects(limited.run({ work }), TransactionOutcomeUnknown);
  assert.deepEqual(stubborn.calls, ['begin#1', 'produce#1', 'commit#1', 'commit#1', 'commit#1'], 'two retries, then unknown: no abort');
});
