import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../core/config.ts';
import { acquireLease } from '../../core/lease.ts';
import type { Logger } from '../../core/log.ts';
import { createObjectStore } from '../../core/object-store.ts';
import { runExclusive, type ScheduledTask } from '../../backfill/scheduler.ts';
import { cleanupPrefix, config, testS3, uniqueName } from '../helpers.ts';

function recordingLogger(lines: Array<{ msg: string; fields?: Record<string, unknown> }>): Logger {
  const write = (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, fields });
  const logger: Logger = { debug: write, info: write, warn: write, error: write, child: () => logger };
  return logger;
}

test('a scheduled task never overlaps itself: the second scheduler skips while the first holds the lock', async (t) => {
  const s3 = testS3(t);
  const lockRoot = `${uniqueName('locks')}/_lakestream/locks`;
  cleanupPrefix(t, s3, lockRoot.split('/')[0]! + '/');
  const store = createObjectStore(s3, config.LAKE_BUCKET);
  let running = 0;
  let maxConcurrent = 0;
  let runs = 0;
  const task: ScheduledTask = {
    name: 'slow',
    cron: '* * * * *',
    async run() {
      runs++;
      maxConcurrent = Math.max(maxConcurrent, ++running);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      running--;
      return {};
    },
  };
  const lines: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
  const schedulerA = { store, lockRoot, log: recordingLogger(lines), retries: 0 };
  const schedulerB = { store: createObjectStore(testS3(t), config.LAKE_BUCKET), lockRoot, log: recordingLogger(lines), retries: 0 };
  const outcomes = await Promise.all([runExclusive(task, schedulerA), runExclusive(task, schedulerB), runExclusive(task, schedulerA)]);
  assert.equal(runs, 1);
  assert.equal(maxConcurrent, 1);
  assert.deepEqual(outcomes.map((o) => o.status).sort(), ['skipped', 'skipped', 'succeeded']);
  assert.ok(lines.some((line) => line.msg === 'run skipped' && line.fields?.error === 'another run holds the lock'));

  // Released after the run: the next tick runs again.
  assert.equal((await runExclusive(task, schedulerB)).status, 'succeeded');
  assert.equal(runs, 2);
});

test('an expired lock (its holder died) is taken over; a live one is not', async (t) => {
  const s3 = testS3(t);
  const prefix = `${uniqueName('lease')}/`;
  cleanupPrefix(t, s3, prefix);
  const store = createObjectStore(s3, config.LAKE_BUCKET);
  const dead = await acquireLease(store, `${prefix}task.json`, 300);
  assert.ok(dead);
  assert.equal(await acquireLease(store, `${prefix}task.json`, 60_000), undefined, 'held');
  await new Promise((resolve) => setTimeout(resolve, 400));
  const heir = await acquireLease(store, `${prefix}task.json`, 60_000);
  assert.ok(heir, 'taken over after the TTL');
  assert.equal(await dead.renew(), false, 'the dead holder cannot renew');
  await heir.release();
  assert.ok(await acquireLease(store, `${prefix}task.json`, 60_000), 'free after release');
});

test('a failed run is retried with backoff and its outcome reported', async (t) => {
  const s3 = testS3(t);
  const lockRoot = `${uniqueName('retry')}/locks`;
  cleanupPrefix(t, s3, lockRoot.split('/')[0]! + '/');
  const store = createObjectStore(s3, config.LAKE_BUCKET);
  const lines: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
  let calls = 0;
  const flaky: ScheduledTask = {
    name: 'flaky',
    cron: '* * * * *',
    async run() {
      if (++calls < 3) throw new Error(`S3 hiccup ${calls}`);
      return { ok: true };
    },
  };
  const outcome = await runExclusive(flaky, { store, lockRoot, log: recordingLogger(lines), retries: 3, retryDelayMs: 10 });
  assert.equal(outcome.status, 'succeeded');
  assert.equal(outcome.attempts, 3);
  assert.equal(lines.filter((line) => line.msg === 'run failed; retrying').length, 2);

  const broken: ScheduledTask = { ...flaky, name: 'broken', run: async () => Promise.reject(new Error('bucket gone')) };
  const failed = await runExclusive(broken, { store, lockRoot, log: recordingLogger(lines), retries: 2, retryDelayMs: 10 });
  assert.deepEqual({ status: failed.status, attempts: failed.attempts, error: failed.error }, { status: 'failed', attempts: 3, error: 'bucket gone' });
  assert.ok(lines.some((line) => line.msg === 'run failed' && line.fields?.task === 'broken'));
});

test('schedules come from the environment and an invalid cron expression is refused by name', () => {
  assert.equal(loadConfig({ SCHEDULE_COMPACTION: '*/10 * * * *' }).SCHEDULE_COMPACTION, '*/10 * * * *');
  assert.throws(() => loadConfig({ SCHEDULE_BACKFILL: 'at night' }), /SCHEDULE_BACKFILL: expected a cron expression/);
});
