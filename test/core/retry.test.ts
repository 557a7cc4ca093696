import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LakestreamError } from '../../core/errors.ts';
import { retry } from '../../core/retry.ts';

const transient = () => new LakestreamError('S3_ERROR', 'slow down', { retriable: true });

test('retries retriable errors until the task succeeds', async () => {
  let calls = 0;
  const result = await retry(
    async () => {
      calls++;
      if (calls < 3) throw transient();
      return 'ok';
    },
    { initialDelayMs: 1 },
  );
  assert.equal(result, 'ok');
  assert.equal(calls, 3);
});

test('gives up after the configured retries and rethrows the last error', async () => {
  let calls = 0;
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw transient();
      },
      { retries: 2, initialDelayMs: 1 },
    ),
    /slow down/,
  );
  assert.equal(calls, 3);
});

test('does not retry a non-retriable error, and bail() stops at once', async () => {
  let calls = 0;
  await assert.rejects(
    retry(async () => {
      calls++;
      throw new LakestreamError('RECORD_INVALID', 'bad currency');
    }),
    /bad currency/,
  );
  assert.equal(calls, 1);
  await assert.rejects(retry(async ({ bail }) => bail(new Error('stop'))), /stop/);
});
