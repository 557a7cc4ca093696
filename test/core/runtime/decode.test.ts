import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message } from '@confluentinc/kafka-javascript';
import avro from 'avsc';
import type { AvroDecoder } from '../../../core/avro.ts';
import { createDeadLetters } from '../../../core/dead-letter.ts';
import { LakestreamError } from '../../../core/errors.ts';
import { createLogger } from '../../../core/log.ts';
import { createFetchDecoder } from '../../../core/runtime/decode.ts';

// Decoding is pure logic over a decoder function: here one avsc type behind a one-byte frame.
const type = avro.Type.forSchema({ type: 'record', name: 'Order', fields: [{ name: 'amount', type: 'int' }] });
const decode: AvroDecoder = (bytes) => {
  if (!bytes || bytes[0] !== 0) throw new LakestreamError('RECORD_UNDECODABLE', 'wrong magic byte', { context: { reason: 'bad_magic' } });
  if (bytes[1] === 0xff) throw new LakestreamError('REGISTRY_ERROR', 'registry unreachable', { retriable: true });
  return { schemaId: 7, type, value: type.fromBuffer(bytes.subarray(1)) as Record<string, unknown> };
};
const frame = (amount: number) => Buffer.concat([Buffer.from([0]), type.toBuffer({ amount })]);
const message = (partition: number, offset: number, value: Buffer): Message => ({ topic: 'orders', partition, offset, value, key: `k${offset}`, size: value.length, timestamp: 0 });

test('decode: per-partition batches in offset order; undecodable records and broken rules become dead letters the batch still covers', async () => {
  const deadLetters = createDeadLetters('decode-test', createLogger('test'));
  const rules = (value: Record<string, unknown>) => {
    if ((value.amount as number) < 0) throw new LakestreamError('RECORD_INVALID', 'amount: negative', { context: { reason: 'negative_amount' } });
  };
  const decodeFetch = createFetchDecoder({ decode, rules, deadLetters });
  const { batches, letters } = await decodeFetch([message(0, 10, frame(5)), message(1, 3, Buffer.from([9])), message(0, 11, frame(-1)), message(0, 12, frame(7)), message(1, 4, frame(1))]);
  assert.deepEqual(
    batches.map((b) => ({ partition: b.partition, lastOffset: b.lastOffset, offsets: b.records.map((r) => r.offset), amounts: b.records.map((r) => r.value.amount) })),
    [
      { partition: 0, lastOffset: 12, offsets: [10, 12], amounts: [5, 7] },
      { partition: 1, lastOffset: 4, offsets: [4], amounts: [1] },
    ],
  );
  assert.equal(batches[0]!.records[0]!.schemaId, 7);
  assert.deepEqual(letters.map((l) => l.headers!.find((h) => 'dlq.reason' in h)), [{ 'dlq.reason': 'bad_magic' }, { 'dlq.reason': 'negative_amount' }]);
  assert.deepEqual(deadLetters.counts(), { bad_magic: 1, negative_amount: 1 });
});

test("decode: the handler's accept check dead-letters; a retriable failure fails the fetch (it is decoded again)", async () => {
  const deadLetters = createDeadLetters('decode-test', createLogger('test'));
  const accept = (record: { value: Record<string, unknown> }) => {
    if (record.value.amount === 13) throw new LakestreamError('RECORD_INVALID', 'amount: the table cannot hold 13', { context: { reason: 'schema_not_writable' } });
  };
  const decodeFetch = createFetchDecoder({ decode, accept, deadLetters });
  const { batches, letters } = await decodeFetch([message(0, 0, frame(13)), message(0, 1, frame(2))]);
  assert.deepEqual(batches[0]!.records.map((r) => r.offset), [1]);
  assert.equal(letters.length, 1);
  await assert.rejects(decodeFetch([message(0, 2, Buffer.from([0, 0xff]))]), (error) => error instanceof LakestreamError && error.retriable);
});
