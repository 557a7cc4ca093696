import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBatchSizer } from '../../../core/runtime/batch-size.ts';

test('batch size: full fetches double it up to the ceiling, nearly empty ones halve it back to the floor, a fixed size stays', () => {
  const sizer = createBatchSizer(2_000, 20_000);
  const seen: number[] = [];
  // a backlog: every fetch comes back full
  for (let i = 0; i < 6; i++) {
    sizer.observe(sizer.size);
    seen.push(sizer.size);
  }
  assert.deepEqual(seen, [4_000, 8_000, 16_000, 20_000, 20_000, 20_000]);
  // half full: the job keeps up at this size, it stays
  sizer.observe(10_000);
  assert.equal(sizer.size, 20_000);
  // caught up: a few records a fetch
  const back: number[] = [];
  for (let i = 0; i < 5; i++) {
    sizer.observe(100);
    back.push(sizer.size);
  }
  assert.deepEqual(back, [10_000, 5_000, 2_500, 2_000, 2_000]);

  const fixed = createBatchSizer(500);
  fixed.observe(500);
  fixed.observe(0);
  assert.equal(fixed.size, 500);
});
