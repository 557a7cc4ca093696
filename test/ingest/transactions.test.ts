import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { validateTransaction } from '../../schemas/transactions.ts';
import { isLate } from '../../core/windows.ts';
import { transactionWindows } from '../../platform/catalog.ts';
import { config, onCleanup } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

test('the generator is reproducible, skewed across users and realistic in amounts and currencies', () => {
  const options = { users: 1_000, seed: 42, spreadDays: 7, now: Date.UTC(2026, 10, 21) };
  const a = Array.from({ length: 20_000 }, createTransactionGenerator(options));
  const b = Array.from({ length: 20_000 }, createTransactionGenerator(options));
  assert.deepEqual(a, b, 'same seed, same records');
  assert.notDeepEqual(a.slice(0, 10), Array.from({ length: 10 }, createTransactionGenerator({ ...options, seed: 43 })));
  for (const record of a) validateTransaction(record);

  const perUser = new Map<number, number>();
  for (const record of a) perUser.set(record.user_id, (perUser.get(record.user_id) ?? 0) + 1);
  const sorted = [...perUser.values()].sort((x, y) => y - x);
  const top1pct = sorted.slice(0, 10).reduce((sum, n) => sum + n, 0);
  assert.ok(top1pct / a.length > 0.2, `the top 1% of users make over 20% of transactions (${top1pct})`);
  assert.ok(perUser.size > 500, 'and there is a long tail');

  const debits = a.filter((r) => r.amount < 0).length / a.length;
  assert.ok(debits > 0.7 && debits < 0.9, `mostly debits (${debits})`);
  assert.ok(new Set(a.map((r) => r.currency)).size >= 5, 'a currency mix');
  const days = new Set(a.map((r) => new Date(r.transaction_timestamp_millis).toISOString().slice(0, 10)));
  assert.ok(days.size >= 7, 'event times spread over past days');
  assert.ok(a.every((r) => r.transaction_timestamp_millis <= options.now));
});

test('history of a known length is sent oldest first, out of order by at most the disorder, so no record is late for the windows', () => {
  const now = Date.UTC(2026, 10, 21);
  const records = Array.from({ length: 5_000 }, createTransactionGenerator({ users: 100, seed: 8, spreadDays: 3, records: 5_000, now }));
  const times = records.map((r) => r.transaction_timestamp_millis);
  let front = -Infinity;
  let lagging = 0;
  for (const time of times) {
    assert.ok(time >= front - 2 * 60_000, `${new Date(time).toISOString()} lags the newest before it by more than 2 min`);
    assert.equal(isLate(time, Number.isFinite(front) ? front : undefined, transactionWindows), false);
    if (time < front) lagging++;
    front = Math.max(front, time);
  }
  assert.ok(lagging > 500, `records do arrive out of order (${lagging})`);
  assert.ok(Math.min(...times) <= now - 3 * 86_400_000 + 60_000 && Math.max(...times) >= now - 2 * 60_000 && Math.max(...times) <= now, 'the history spans the three days up to now');
});

test('an invalid transaction is refused with the field and the record named', () => {
  const good = { user_id: 1, transaction_timestamp_millis: 1_700_000_000_000, amount: -12.5, currency: 'EUR', counterpart_id: 9 };
  assert.deepEqual(validateTransaction(good), good);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...good, currency: 'euro' }, /currency: must be three upper-case letters/],
    [{ ...good, user_id: 1.5 }, /user_id:/],
    [{ ...good, amount: Number.NaN }, /amount:/],
    [{ ...good, counterpart_id: undefined }, /counterpart_id:/],
    [{ ...good, transaction_timestamp_millis: -1 }, /transaction_timestamp_millis:/],
  ];
  for (const [record, pattern] of cases) {
    assert.throws(
      () => validateTransaction(record),
      (error: unknown) => error instanceof LakestreamError && error.code === 'RECORD_INVALID' && pattern.test(error.message) && error.message.includes('"user_id"'),
    );
  }
});

test('the producer library sends valid records and refuses invalid ones without sending them', { timeout: 180_000 }, async (t) => {
  // Once, in a full run on a loaded machine, this test outran its timeout with no sign of where:
  // each step now says when it starts and how long it took.
  const step = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    const startedAt = Date.now();
    t.diagnostic(`${what}: started`);
    const result = await run();
    t.diagnostic(`${what}: ${Date.now() - startedAt} ms`);
    return result;
  };
  const { names } = await step('setupPipeline', () => setupPipeline(t, 'producer'));
  const producer = await step('createTransactionsProducer', () => createTransactionsProducer(config, { topic: names.topic.transactions }));
  onCleanup(t, () => step('producer.close', () => producer.close()));
  const outcome = await step('producer.send', () =>
    producer.send([
      { user_id: 1, transaction_timestamp_millis: Date.now(), amount: 10, currency: 'USD', counterpart_id: 2 },
      { user_id: 2, transaction_timestamp_millis: Date.now(), amount: 10, currency: 'US', counterpart_id: 2 },
      { user_id: 3, transaction_timestamp_millis: Date.now(), amount: 10, currency: 'EUR', counterpart_id: 'two' },
    ]),
  );
  assert.equal(outcome.sent, 1);
  assert.deepEqual(
    outcome.refused.map(({ record }) => (record as { user_id: number }).user_id),
    [2, 3],
  );
  assert.match(outcome.refused[0]!.reason, /currency/);
  // the schema, not only the rules: the reason names the field avsc could not encode
  assert.match(outcome.refused[1]!.reason, /counterpart_id must be int, got "two"/);
});

test('pnpm run producer sends the requested count and prints the summary', { timeout: 180_000 }, async (t) => {
  const { names } = await setupPipeline(t, 'producer-cli');
  const result = spawnSync('pnpm', ['--silent', 'run', 'producer', '--', 'transactions', '--topic', names.topic.transactions, '--count', '3000', '--seed', '1', '--users', '50'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^sent 3,000, failed 0, [\d,]+ records\/s, [\d.]+ MB\/s, latency p50 [\d.]+ ms, p99 [\d.]+ ms/m);
  const usage = spawnSync('pnpm', ['--silent', 'run', 'producer', '--', '--help'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(usage.status, 0);
  assert.match(usage.stdout, /--count N/);
  const wrong = spawnSync('pnpm', ['--silent', 'run', 'producer', '--', 'transactions', '--count', 'many'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /--count must be a non-negative number, got "many"/);
});
