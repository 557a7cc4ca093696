import assert from 'node:assert/strict';
import { test } from 'node:test';
import avro from 'avsc';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { avroCodec, createAvroDecoder } from '../../core/avro.ts';
import { LakestreamError } from '../../core/errors.ts';

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

test('a schema id the registry cannot be asked about is retried, one it does not know is dead-lettered', async () => {
  const failingWith = (status: number, message: string) =>
    createAvroDecoder({ getSchema: async () => Promise.reject(Object.assign(new Error(message), { status })) } as unknown as SchemaRegistry);
  const framed = Buffer.from([0, 0, 0, 0, 9, 2]);
  const verdict = async (decode: ReturnType<typeof createAvroDecoder>) => {
    try {
      await decode(framed);
    } catch (error) {
      assert.ok(error instanceof LakestreamError && error.code === 'RECORD_UNDECODABLE');
      return error.retriable;
    }
    assert.fail('decoding should have failed');
  };
  // how @kafkajs/confluent-schema-registry reports a refused connection: status 400, the socket error as message
  assert.equal(await verdict(failingWith(400, 'Confluent_Schema_Registry - Error, status 400: connect ECONNREFUSED 127.0.0.1:8081')), true);
  assert.equal(await verdict(failingWith(503, 'Service Unavailable')), true);
  assert.equal(await verdict(failingWith(404, 'Schema 9 not found')), false);
});
