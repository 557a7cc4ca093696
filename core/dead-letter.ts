import { metrics } from './metrics.ts';
import type { Message } from '@confluentinc/kafka-javascript';
import { LakestreamError, errorMessage } from './errors.ts';
import type { OutgoingMessage } from './kafka-producer.ts';
import type { Logger } from './log.ts';

/**
 * Records that cannot be decoded or break a business rule go to `dlq.<source topic>` with the
 * original key, value and headers untouched and the reason in `dlq.*` headers. Each kind of
 * failure is logged once (then counted), so a flood of bad input cannot drown the logs.
 */
export interface DeadLetters {
  /** The dead letter for `message`, counted under its reason. */
  letter(message: Message, error: unknown): OutgoingMessage;
  /** Dead letters made so far, by reason. */
  counts(): Record<string, number>;
}

/** A record the pipeline must step over (dead-letter) rather than retry or fail on. */
export function isPoison(error: unknown): boolean {
  return error instanceof LakestreamError && !error.retriable && (error.code === 'RECORD_UNDECODABLE' || error.code === 'RECORD_INVALID');
}

function reasonOf(error: unknown): string {
  if (error instanceof LakestreamError) return String(error.context.reason ?? error.code).toLowerCase();
  return 'error';
}

export function createDeadLetters(job: string, log: Logger): DeadLetters {
  const counts = new Map<string, number>();
  return {
    letter(message, error) {
      const reason = reasonOf(error);
      const seen = counts.get(reason) ?? 0;
      counts.set(reason, seen + 1);
      metrics.deadLetters.inc({ job, reason });
      const { topic, partition, offset } = message;
      if (seen === 0) log.warn('dead letter', { reason, error: errorMessage(error), topic, partition, offset, firstOfKind: true });
      return {
        key: message.key ?? null,
        value: message.value ?? null,
        headers: [
          ...(message.headers ?? []),
          { 'dlq.reason': reason },
          { 'dlq.error': errorMessage(error).slice(0, 1000) },
          { 'dlq.source.topic': topic },
          { 'dlq.source.partition': String(partition) },
          { 'dlq.source.offset': String(offset) },
          { 'dlq.source.timestamp': String(message.timestamp ?? '') },
          { 'dlq.time': new Date().toISOString() },
          { 'dlq.job': job },
        ],
      };
    },
    counts: () => Object.fromEntries(counts),
  };
}
