import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKafka } from '../../core/kafka.ts';
import { createRegistry, registerAvro } from '../../core/registry.ts';
import { cleanupTopics, config, onCleanup, testAdmin, uniqueName } from '../helpers.ts';

const schema = JSON.stringify({
  type: 'record',
  name: 'Probe',
  namespace: 'dev.lakestream.test',
  fields: [
    { name: 'user_id', type: 'int' },
    { name: 'note', type: 'string' },
  ],
});

test('an Avro record produced through the registry is consumed and decoded', async (t) => {
  const admin = testAdmin(t);
  const topic = uniqueName('avro');
  cleanupTopics(t, admin, [topic]);
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: Math.min(3, config.KAFKA_BROKERS.length) });

  const registry = createRegistry(config);
  const id = await registerAvro(registry, `${topic}-value`, schema);
  const value = await registry.encode(id, { user_id: 42, note: 'héllo' });
  assert.equal(value[0], 0, 'Confluent magic byte');
  assert.equal(value.readUInt32BE(1), id, 'schema id follows the magic byte');

  const kafka = createKafka(config);
  const producer = kafka.producer({ 'enable.idempotence': true, acks: -1 } as never);
  await producer.connect();
  onCleanup(t, () => producer.disconnect());
  await producer.send({ topic, messages: [{ key: '42', value }] });

  const consumer = kafka.consumer({ kafkaJS: { groupId: uniqueName('group'), fromBeginning: true } });
  await consumer.connect();
  onCleanup(t, () => consumer.disconnect());
  await consumer.subscribe({ topics: [topic] });
  const decoded = await new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no record within 30 s')), 30_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        clearTimeout(timer);
        // a fresh client proves the schema is fetched from the registry by id
        resolve(await createRegistry(config).decode(message.value!));
      },
    });
  });
  assert.deepEqual({ ...(decoded as object) }, { user_id: 42, note: 'héllo' });
});
