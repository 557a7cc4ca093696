import assert from 'node:assert/strict';
import { test } from 'node:test';
import avro from 'avsc';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { avroCodec } from '../../core/avro.ts';

test('encodeTransient gives the bytes of encode, in a reused buffer that grows for large records', async () => {
  const type = avro.Type.forSchema({ type: 'record', name: 'R', fields: [{ name: 'id', type: 'long' }, { name: 'text', type: 'string' }] });
  // the codec only asks the registry for the writer schema of its id
  const schemas = { getSchema: async () => type } as unknown as SchemaRegistry;
  const codec = await avroCodec(schemas, 42);
  const small = { id: 7, text: 'abc' };
  const large = { id: 8, text: 'x'.repeat(100_000) };
  const first = codec.encodeTransient(small);
  assert.deepEqual(Buffer.from(first), codec.encode(small));
  assert.deepEqual([...first.subarray(0, 5)], [0, 0, 0, 0, 42], 'Confluent framing: magic byte and schema id');
  assert.deepEqual(Buffer.from(codec.encodeTransient(large)), codec.encode(large), 'past the initial buffer size');
  assert.deepEqual(Buffer.from(codec.encodeTransient(small)), codec.encode(small), 'and back to small ones');
});
