import type { KafkaJS } from '@confluentinc/kafka-javascript';
import { LakestreamError, errorMessage } from './errors.ts';
import type { Logger } from './log.ts';

export interface DeadLetterSource {
  topic: string;
  partition: number;
  message: KafkaJS.Message & { offset: string; timestamp?: string };
}

/**
 * Where records that cannot be decoded or break a business rule go: `dlq.<source topic>`, with
 * the original key, value and headers untouched and the reason in `dlq.*` headers. Each kind of
 * failure is logged once (then counted), so a flood of bad input cannot drown the logs.
 */
/** A producer, or an open Kafka transaction (so a dead letter commits with the job's output). */
export interface DeadLetterSender {
  send(record: KafkaJS.ProducerRecord): Promise<unknown>;
}

export interface DeadLetters {
  /** Resolves once `sender` has the dead letter; the caller may then move past the record. */
  send(sender: DeadLetterSender, source: DeadLetterSource, error: unknown): Promise<void>;
  /** Dead letters sent so far, by reason. */
  counts(): Record<string, number>;
}

export function reasonOf(error: unknown): string {
  if (error instanceof LakestreamError) return String(error.context.reason ?? error.code).toLowerCase();
  return 'error';
}

export function createDeadLetters(job: string, log: Logger): DeadLetters {
  const counts = new Map<string, number>();
  return {
    async send(producer, { topic, partition, message }, error) {
      const reason = reasonOf(error);
      const seen = counts.get(reason) ?? 0;
      counts.set(reason, seen + 1);
      if (seen === 0) log.warn('dead letter', { reason, error: errorMessage(error), topic, partition, offset: message.offset, firstOfKind: true });
      await producer.send({
        topic: `dlq.${topic}`,
        messages: [
          {
            key: message.key ?? null,
            value: message.value ?? null,
            headers: {
              ...(message.headers ?? {}),
              'dlq.reason': reason,
              'dlq.error': errorMessage(error).slice(0, 1000),
              'dlq.source.topic': topic,
              'dlq.source.partition': String(partition),
              'dlq.source.offset': String(message.offset),
              'dlq.source.timestamp': String(message.timestamp ?? ''),
              'dlq.time': new Date().toISOString(),
              'dlq.job': job,
            },
          },
        ],
      });
    },
    counts: () => Object.fromEntries(counts),
  };
}
