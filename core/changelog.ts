import kafkaJavascript, { type Message } from '@confluentinc/kafka-javascript';
import { type KafkaConnection, librdkafkaBase } from './kafka.ts';
import { connectOrExplain } from './kafka-probe.ts';
import type { AvroDecoder } from './avro.ts';
import { LakestreamError } from './errors.ts';
import { fromCallback } from './async.ts';

/** How long a restore may take before it fails rather than hand a job part of its state. */
const RESTORE_DEADLINE_MS = 120_000;

/**
 * Reads partitions of a (compacted) topic from their start to their end with read_committed,
 * calling `onMessage` for each record in offset order per partition: how a stateful job rebuilds
 * its state from its own changelog. Records of aborted transactions are never seen. One consumer
 * reads all the partitions at once, so a job that is assigned six partitions pays one connection,
 * not six. Resolves with the records read per partition.
 *
 * A partition is done when librdkafka reports its end (partition EOF: the fetch position reached
 * the last stable offset) or a delivered record reaches the high watermark read at the start.
 * Not when polls come back empty: a transactional changelog ends with a commit marker that is
 * never delivered, and a fetch that stalls for a second mid-log (a leader change, a loaded broker)
 * looks the same as the end. A restore that has not ended by its deadline fails, naming the
 * partitions it was still reading.
 */
export async function readPartitionsToEnd(
  config: KafkaConnection,
  topic: string,
  partitions: number[],
  onMessage: (message: Message) => void | Promise<void>,
  options: { deadlineMs?: number } = {},
): Promise<Map<number, number>> {
  const counts = new Map(partitions.map((p) => [p, 0]));
  if (!partitions.length) return counts;
  const consumer = new kafkaJavascript.KafkaConsumer(
    {
      ...librdkafkaBase(config),
      'group.id': `lakestream-restore-${topic}`,
      'enable.auto.commit': false,
      'isolation.level': 'read_committed',
      'enable.partition.eof': true,
      'fetch.max.bytes': 16 * 1024 * 1024,
      'fetch.wait.max.ms': 10,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await connectOrExplain(consumer as unknown as kafkaJavascript.Client<string>, config, 10_000);
  try {
    const ends = new Map<number, number>();
    for (const partition of partitions) {
      const { highOffset } = await fromCallback<{ highOffset: number }>((cb) => consumer.queryWatermarkOffsets(topic, partition, 10_000, cb));
      if (highOffset > 0) ends.set(partition, highOffset);
    }
    if (!ends.size) return counts;
    // emitted synchronously while a consume call hands over its batch, before its callback
    consumer.on('partition.eof', (eof: { topic: string; partition: number }) => {
      if (eof.topic === topic) ends.delete(eof.partition);
    });
    consumer.assign([...ends.keys()].map((partition) => ({ topic, partition, offset: 0 })));
    consumer.setDefaultConsumeTimeout(200);
    const deadlineMs = options.deadlineMs ?? RESTORE_DEADLINE_MS;
    const deadline = Date.now() + deadlineMs;
    while (ends.size) {
      const messages = await fromCallback<Message[]>((cb) => consumer.consume(5_000, cb));
      for (const message of messages) {
        const pending = onMessage(message);
        if (pending) await pending;
        counts.set(message.partition, (counts.get(message.partition) ?? 0) + 1);
        const end = ends.get(message.partition);
        if (end !== undefined && message.offset + 1 >= end) ends.delete(message.partition);
      }
      if (ends.size && Date.now() > deadline) {
        throw new LakestreamError('KAFKA_ERROR', `restoring ${topic} partitions ${[...ends.keys()].join(', ')} did not reach their end within ${deadlineMs / 1000} s`, {
          retriable: true,
          context: { topic },
        });
      }
    }
    return counts;
  } finally {
    // the state is read: a disconnect that hangs (brokers in flux) must not hold the job with it
    await Promise.race([fromCallback<unknown>((cb) => consumer.disconnect(cb)).catch(() => {}), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  }
}

/**
 * A stateful job's state, rebuilt from its compacted changelog: per partition, the last value of
 * every key (a tombstone removes the key). Values are decoded with the registry, by the schema id
 * each record carries, so records written with an older or newer schema version restore as what
 * they are.
 */
export async function restoreKeyedState<K, V>(
  context: { config: KafkaConnection; decode: AvroDecoder },
  topic: string,
  partitions: number[],
  read: { key(text: string): K; value(record: Record<string, unknown>): V },
): Promise<{ states: Map<number, Map<K, V>>; records: number }> {
  const states = new Map(partitions.map((p) => [p, new Map<K, V>()]));
  const records = await readPartitionsToEnd(context.config, topic, partitions, async (message) => {
    if (!message.key) return;
    const state = states.get(message.partition)!;
    const key = read.key(message.key.toString());
    if (message.value === null || message.value === undefined) {
      state.delete(key);
      return;
    }
    const pending = context.decode(message.value);
    const { value } = pending instanceof Promise ? await pending : pending;
    state.set(key, read.value(value));
  });
  return { states, records: [...records.values()].reduce((a, b) => a + b, 0) };
}
