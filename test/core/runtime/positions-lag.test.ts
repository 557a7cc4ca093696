import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LakestreamError } from '../../../core/errors.ts';
import { partitionLag } from '../../../core/runtime/lag.ts';
import { PositionTracker } from '../../../core/runtime/positions.ts';

test('positions: offsets that go back within an assignment are a topic reset, naming the partition; own seeks and rebalances are not', () => {
  const positions = new PositionTracker('orders');
  positions.check([{ partition: 0, offset: 5 }, { partition: 1, offset: 9 }]);
  positions.check([{ partition: 0, offset: 6 }]);
  positions.seeked(0, 2);
  positions.check([{ partition: 0, offset: 2 }]);
  positions.forget([1]);
  positions.check([{ partition: 1, offset: 0 }]);
  assert.throws(
    () => positions.check([{ partition: 1, offset: 1 }, { partition: 0, offset: 1 }]),
    (error) => error instanceof LakestreamError && error.code === 'TOPIC_RESET' && /partition 0 from offset 2 back to 1/.test(error.message) && /sink:reset/.test(error.message),
  );
});

test('positions: a forward jump is records deleted unread only where the log now starts past the next offset; markers and the committed resume point are told apart', () => {
  const positions = new PositionTracker('orders');
  const logStart = new Map<number, number>([[0, 0], [1, 40], [2, 0]]);
  const start = (partition: number) => logStart.get(partition);
  // partition 0: transaction markers between records are jumps, not losses
  assert.deepEqual(positions.check([{ partition: 0, offset: 3 }, { partition: 0, offset: 5 }, { partition: 0, offset: 9 }], start), []);
  // partition 1 resumes where its group committed (10), but its log starts at 40 now
  assert.deepEqual(positions.resumeAt(1, 10, 40), { partition: 1, from: 10, to: 40 });
  assert.deepEqual(positions.check([{ partition: 1, offset: 40 }, { partition: 1, offset: 41 }], start), [], 'reported at assignment, not again');
  // a seek back below what was reported (a lake sink resuming from its snapshot) does not count it twice
  positions.seeked(1, 12);
  logStart.set(1, 45);
  assert.deepEqual(positions.check([{ partition: 1, offset: 45 }], start), [{ partition: 1, from: 40, to: 45 }]);
  positions.forget([1]);
  positions.seeked(1, 10);
  logStart.set(1, 40);
  assert.deepEqual(positions.check([{ partition: 1, offset: 40 }, { partition: 1, offset: 41 }], start), [{ partition: 1, from: 10, to: 40 }]);
  // while running, retention passes partition 0's position: what was deleted is [10, 25)
  logStart.set(0, 25);
  assert.deepEqual(positions.check([{ partition: 0, offset: 25 }], start), [{ partition: 0, from: 10, to: 25 }]);
  // a seek of ours before the committed offset was asked: the seek is where it resumes
  positions.seeked(2, 7);
  assert.equal(positions.resumeAt(2, 5, 0), undefined);
  logStart.set(2, 7);
  assert.deepEqual(positions.check([{ partition: 2, offset: 7 }], start), []);
  // an unknown log start says nothing
  positions.resumeAt(3, 0, 0);
  assert.deepEqual(positions.check([{ partition: 3, offset: 50 }], start), []);
  // a rebalance forgets the expectation with the rest
  positions.resumeAt(4, 0, 0);
  positions.forget([4]);
  logStart.set(4, 30);
  assert.deepEqual(positions.check([{ partition: 4, offset: 30 }], start), []);
});

test('lag: last stable offset less the position, for assigned partitions only; the committed offset before the first read', () => {
  const statistics = JSON.stringify({
    topics: {
      orders: {
        partitions: {
          '-1': { ls_offset: 0 },
          '0': { ls_offset: 100, app_offset: 40, committed_offset: 30 },
          '1': { ls_offset: 100, app_offset: -1001, committed_offset: 70 },
          '2': { ls_offset: 100, app_offset: 120 },
          '3': { ls_offset: 100, app_offset: 10 },
          '4': { ls_offset: -1001, app_offset: 10 },
        },
      },
      other: { partitions: { '0': { ls_offset: 5, app_offset: 1 } } },
    },
  });
  const lags = partitionLag(statistics, 'orders', new Set([0, 1, 2, 4]));
  assert.deepEqual(lags, [{ partition: 0, lag: 60 }, { partition: 1, lag: 30 }, { partition: 2, lag: 0 }, { partition: 3 }, { partition: 4 }]);
  assert.deepEqual(partitionLag('{}', 'orders', new Set([0])), []);
});
