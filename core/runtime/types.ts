import type { Message } from '@confluentinc/kafka-javascript';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { Type } from 'avsc';
import type { AvroDecoder } from '../avro.ts';
import type { Config } from '../config.ts';
import type { OutgoingMessage } from '../kafka-producer.ts';
import type { Logger } from '../log.ts';

/**
 * What the runtime needs of the process around it: the platform's client context provides it,
 * and a test can too. The runtime knows topics only by name; what a topic's records must satisfy
 * and where its dead letters go is the catalog's to say.
 */
export interface RuntimeContext {
  readonly config: Config;
  readonly log: Logger;
  readonly registry: SchemaRegistry;
  readonly decode: AvroDecoder;
  readonly catalog: {
    topicByName(name: string): { rules?: (value: Record<string, unknown>) => void } | undefined;
    deadLetterTopic(topic: string): string;
  };
}

/**
 * The contract between the runtime and a job's handler.
 *
 * Commit modes:
 * - `after-batch`: offsets are committed once `handle` resolved (output durable and idempotent,
 *   e.g. absolute values in Redis).
 * - `handler`: the handler commits through `controls.commit` when its output is durable (the lake
 *   sink, whose buffers span many batches).
 * - `transaction`: each batch is one Kafka transaction holding the handler's output, the dead
 *   letters and the consumer offsets (exactly-once consume-transform-produce). On an abort the
 *   handler is told, so it drops in-memory state that may be ahead of what committed.
 *
 * Dead letters of the non-transactional modes are acknowledged by Kafka before the batch reaches
 * the handler, so no offset is ever committed past a record that is neither handled nor in the
 * dead-letter topic.
 */
export type CommitMode = 'after-batch' | 'handler' | 'transaction';

export interface StreamRecord {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | string | null | undefined;
  value: Record<string, unknown>;
  schemaId: number;
  type: Type;
  /** Size of the Avro message, for memory accounting. */
  bytes: number;
  /** The record as fetched: its dead letter keeps key, value and headers untouched. */
  message: Message;
}

export interface PartitionBatch {
  topic: string;
  partition: number;
  /** Decoded, valid records in offset order. */
  records: StreamRecord[];
  /** Highest offset the batch covers, dead letters included. */
  lastOffset: number;
}

export interface BatchContext {
  /** `transaction` mode: adds a record to the batch's transaction. */
  produce(topic: string, message: OutgoingMessage): Promise<void> | void;
  /**
   * `transaction` mode: dead-letters a record the handler refuses (a record too late for its
   * window) in the batch's transaction, with the error's reason, counted as the runtime's own.
   */
  deadLetter(record: StreamRecord, error: unknown): Promise<void> | void;
}

export interface StreamHandler {
  handle(batches: PartitionBatch[], context: BatchContext): Promise<void>;
  /**
   * A check of each decoded record beyond the topic's rules, for what only the handler knows (the
   * lake sink: can its table hold this schema?). Throwing RECORD_INVALID dead-letters the record.
   */
  accept?(record: StreamRecord): Promise<void> | void;
  /** Partitions newly assigned to this member. */
  assigned?(partitions: number[]): Promise<void> | void;
  /** Partitions about to move to another member: make their output durable and commit first. */
  revoked?(partitions: number[]): Promise<void>;
  /** Called between batches every `tickMs` (timed flushes). */
  tick?(): Promise<void>;
  /** `transaction` mode: the transaction of a batch of these partitions was aborted. */
  aborted?(partitions: number[]): void;
  /** The job is stopping: make everything durable and commit. */
  close?(): Promise<void>;
  /** SIGHUP: reload what the handler loaded at start (a model). */
  reload?(): Promise<void>;
  stats?(): Record<string, unknown>;
}

export interface StreamJobControls {
  /** `handler` mode: commits the consumer offset so the next read of `partition` starts at `nextOffset`. */
  commit(partition: number, nextOffset: number): Promise<void>;
  /** The partition's log end (high watermark): the offset the next record written will get. */
  logEnd(partition: number): Promise<number>;
  /** The topic's id, which changes when the topic is deleted and created again under the same name. */
  topicId(): Promise<string>;
  /**
   * Moves an assigned partition's next read to `offset` (back or forward): records fetched before
   * are dropped by librdkafka. A partition no longer assigned is left to its next owner.
   */
  seek(partition: number, offset: number): Promise<void>;
  readonly log: Logger;
  /** The job's name, the `job` label of its metrics. */
  readonly jobName: string;
}

export interface StreamJobOptions {
  /** Job name: consumer group, client id, dead-letter `dlq.job` header. */
  name: string;
  topic: string;
  commit: CommitMode;
  /**
   * Stable id of this process among the job's processes. Given, the consumer is a static member
   * of its group (`group.instance.id` `<name>-<instance>`): a restart after a crash takes its
   * partitions back at once instead of waiting out the session. In `transaction` mode it also
   * names the transactional id `<name>-<instance>` (instance 0 when not given), so a restart
   * fences its predecessor at once.
   */
  instance?: string;
  /** Most records handed to a handler at once (default from the profile). */
  maxBatchSize?: number;
  tickMs?: number;
}

export interface StreamJobStats {
  recordsIn: number;
  batches: number;
  deadLetters: Record<string, number>;
  assigned: number[];
  [key: string]: unknown;
}

export interface StreamJob {
  readonly name: string;
  start(): Promise<void>;
  /** Lets the handler make everything durable, commits, and leaves the group. Idempotent. */
  stop(): Promise<void>;
  /** Rejects if the job fails for good (a non-retriable error, or retries exhausted). */
  readonly failed: Promise<never>;
  /** Asks the handler to reload what it loaded at start; a no-op for most jobs. */
  reload(): Promise<void>;
  stats(): StreamJobStats;
}

/** An offset to commit or send into a transaction: the next offset to read. */
export interface TopicOffset {
  topic: string;
  partition: number;
  offset: number;
}
