import type { Message } from '@confluentinc/kafka-javascript';
import type { AvroDecoder } from '../avro.ts';
import { isPoison, type DeadLetters } from '../dead-letter.ts';
import type { OutgoingMessage } from '../kafka-producer.ts';
import type { PartitionBatch, StreamRecord } from './types.ts';

export interface FetchDecoderDeps {
  decode: AvroDecoder;
  /** The catalog's business rules of the topic: throw RECORD_INVALID to dead-letter a record. */
  rules?: (value: Record<string, unknown>) => void;
  /** The handler's own check of a decoded record (StreamHandler.accept). */
  accept?: (record: StreamRecord) => Promise<void> | void;
  deadLetters: DeadLetters;
}

export interface DecodedFetch {
  batches: PartitionBatch[];
  letters: OutgoingMessage[];
}

/**
 * Splits a fetch into per-partition batches of decoded valid records, and dead letters for the
 * records that cannot be decoded or break a rule. A batch's `lastOffset` covers its dead letters
 * too, so its offset commit steps over them. Any other error (the registry unreachable) is
 * thrown: the fetch is decoded again when the caller retries.
 */
export function createFetchDecoder(deps: FetchDecoderDeps): (messages: Message[]) => Promise<DecodedFetch> {
  const { decode, rules, accept, deadLetters } = deps;
  return async (messages) => {
    const byPartition = new Map<number, PartitionBatch>();
    const letters: OutgoingMessage[] = [];
    for (const message of messages) {
      let batch = byPartition.get(message.partition);
      if (!batch) {
        batch = { topic: message.topic, partition: message.partition, records: [], lastOffset: message.offset };
        byPartition.set(message.partition, batch);
      }
      batch.lastOffset = message.offset;
      try {
        const pending = decode(message.value);
        const decoded = pending instanceof Promise ? await pending : pending;
        rules?.(decoded.value);
        const record: StreamRecord = {
          topic: message.topic,
          partition: message.partition,
          offset: message.offset,
          key: message.key,
          value: decoded.value,
          schemaId: decoded.schemaId,
          type: decoded.type,
          bytes: message.size,
          message,
        };
        // most checks answer from a cache: a promise per record is measurable at 1M records
        const checking = accept?.(record);
        if (checking instanceof Promise) await checking;
        batch.records.push(record);
      } catch (error) {
        if (!isPoison(error)) throw error;
        letters.push(deadLetters.letter(message, error));
      }
    }
    return { batches: [...byPartition.values()], letters };
  };
}
