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
