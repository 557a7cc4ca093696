import kafkaJavascript, { type Message } from '@confluentinc/kafka-javascript';
import type { Config } from './config.ts';
import { LakestreamError } from './errors.ts';

/**
 * Reads one partition of a (compacted) topic from its start to its last stable offset with
 * read_committed, calling `onMessage` for each record: how a stateful job rebuilds its state
 * from its own changelog. Records of aborted transactions are never seen.
 */
export async function readPartitionToEnd(
  config: Pick<Config, 'KAFKA_BROKERS'>,
  topic: string,
  partition: number,
  onMessage: (message: Message) => void | Promise<void>,
): Promise<number> {
  const consumer = new kafkaJavascript.KafkaConsumer(
    {
      'metadata.broker.list': config.KAFKA_BROKERS.join(','),
      'group.id': `lakestream-restore-${topic}`,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
      'fetch.max.bytes': 16 * 1024 * 1024,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  const call = <T>(fn: (cb: (err: unknown, value: T) => void) => void) =>
    new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
  await call((cb) => consumer.connect({ timeout: 10_000 }, cb));
  try {
    const { highOffset } = await call<{ highOffset: number }>((cb) => consumer.queryWatermarkOffsets(topic, partition, 10_000, cb));
    if (highOffset <= 0) return 0;
    consumer.assign([{ topic, partition, offset: 0 }]);
    consumer.setDefaultConsumeTimeout(200);
    let count = 0;
    let idlePolls = 0;
    const deadline = Date.now() + 120_000;
    for (;;) {
      const messages = await call<Message[]>((cb) => consumer.consume(5_000, cb));
      for (const message of messages) {
        const pending = onMessage(message);
        if (pending) await pending;
        count++;
      }
      const [position] = consumer.position([{ topic, partition }]);
      if (position?.offset !== undefined && Number(position.offset) >= highOffset) return count;
      // A trailing transaction marker or aborted batch is never delivered, so the position can
      // stop short of the high watermark: a second of empty polls means the end was reached.
      idlePolls = messages.length ? 0 : idlePolls + 1;
      if (idlePolls >= 5 && position?.offset !== undefined && Number(position.offset) >= 0) return count;
      if (Date.now() > deadline) {
        throw new LakestreamError('KAFKA_ERROR', `restoring ${topic}/${partition} did not reach offset ${highOffset} within 120 s`, {
          retriable: true,
          context: { topic, partition },
        });
      }
    }
  } finally {
    await call((cb) => consumer.disconnect(cb)).catch(() => {});
  }
}
