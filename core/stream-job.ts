import kafkaJavascript, { type KafkaConsumer, type Message } from '@confluentinc/kafka-javascript';
import type { Type } from 'avsc';
import type { ClientContext } from './context.ts';
import { createDeadLetters, isPoison } from './dead-letter.ts';
import { LakestreamError, errorMessage, isRetriable } from './errors.ts';
import { createAdmin, librdkafkaBase } from './kafka.ts';
import type { Admin } from '@platformatic/kafka';
import { connectOrExplain, notAuthorized, createBatchProducer, createTransactionalProducer, type BatchProducer, type OutgoingMessage, type TransactionalProducer } from './kafka-producer.ts';
import type { Logger } from './log.ts';
import { metrics, secondsSince } from './metrics.ts';
import { consumerFetchSettings, profileSettings } from './profile.ts';
import { retry } from './retry.ts';

/**
 * The one runtime of the platform's stream jobs. It owns the consumer (librdkafka's callback API:
 * a batch spans every assigned partition), decoding (synchronous once a schema id is known),
 * the business rules the catalog declares for the topic, poison records and their dead-letter
 * path, retries of transient failures, rebalances, start/stop and stats. A job is a handler:
 * what it does with a batch of decoded records, and how its output becomes durable.
 *
 * Commit modes, the contract between the runtime and a handler:
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

/**
 * A topic whose offsets no longer match what a job has read or stored: deleted and recreated, or
 * truncated. Not retriable: the operator decides (docs/decisions/0012-topic-recreated.md).
 */
export function topicReset(topic: string, what: string[]): LakestreamError {
  return new LakestreamError(
    'TOPIC_RESET',
    `topic ${topic} was deleted and recreated or truncated under this job (${what.join('; ')}); it stops rather than skip or re-read records. If the new topic is meant to be archived from its start, stop its jobs and run \`pnpm run sink:reset -- <job>\` (docs/decisions/0012-topic-recreated.md)`,
    { context: { topic } },
  );
}

const membershipCodes: number[] = [
  kafkaJavascript.CODES.ERRORS.ERR_UNKNOWN_MEMBER_ID,
  kafkaJavascript.CODES.ERRORS.ERR_ILLEGAL_GENERATION,
  kafkaJavascript.CODES.ERRORS.ERR_FENCED_INSTANCE_ID,
];

/** Whether Kafka refused the consumer's group membership (librdkafka may only say so per partition, in the message). */
function lostGroupMembership(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (typeof code === 'number' && membershipCodes.includes(code)) || /Unknown member|Illegal generation|Fenced instance/i.test(errorMessage(error));
}

class GroupMembershipLost extends LakestreamError {
  constructor(cause: unknown) {
    super('KAFKA_ERROR', `the consumer is no longer a member of its group: ${errorMessage(cause)}`, { cause });
  }
}

export interface StreamJobOptions {
  /** Job name: consumer group, client id, dead-letter `dlq.job` header. */
  name: string;
  topic: string;
  commit: 'after-batch' | 'handler' | 'transaction';
  /** `transaction` mode: stable per process, so a restart fences its predecessor at once. */
  transactionalId?: string;
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

/** Methods of the binding's consumer that its type declarations leave out. */
type Consumer = KafkaConsumer & {
  commitCb(offsets: Array<{ topic: string; partition: number; offset: number }>, cb: (err: unknown) => void): void;
  setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void;
};

const ASSIGN = kafkaJavascript.CODES.ERRORS.ERR__ASSIGN_PARTITIONS;
const REVOKE = kafkaJavascript.CODES.ERRORS.ERR__REVOKE_PARTITIONS;

export function createStreamJob(
  options: StreamJobOptions,
  context: ClientContext,
  createHandler: (controls: StreamJobControls) => StreamHandler,
): StreamJob {
  const { config, catalog } = context;
  const profile = profileSettings(config.LAKESTREAM_PROFILE);
  const log = context.log.child({ job: options.name, topic: options.topic });
  const rules = catalog.topicByName(options.topic)?.rules;
  const deadLetterTopic = catalog.deadLetterTopic(options.topic);
  const deadLetters = createDeadLetters(options.name, log);
  const maxBatchSize = options.maxBatchSize ?? profile.maxBatchSize;
  const tickMs = options.tickMs ?? 1_000;
  const stats = { recordsIn: 0, batches: 0, batchMs: 0, commitMs: 0 };
  const assigned = new Set<number>();
  const job = { job: options.name };
  /**
   * Records of each assigned partition not read yet, from librdkafka's statistics every few
   * seconds: the last stable offset (read_committed) less the position of the application.
   * How much of what was read is durable is the committed offsets' business (the dashboard's lag).
   */
  function exportLag(statistics: { message?: string } | string): void {
    type PartitionFigures = { ls_offset?: number; app_offset?: number; committed_offset?: number };
    const parsed = JSON.parse(typeof statistics === 'string' ? statistics : (statistics.message ?? '{}')) as { topics?: Record<string, { partitions?: Record<string, PartitionFigures> }> };
    const partitions = parsed.topics?.[options.topic]?.partitions ?? {};
    for (const [id, figures] of Object.entries(partitions)) {
      const partition = Number(id);
      if (partition < 0) continue;
      const labels = { ...job, topic: options.topic, partition: id };
      const position = (figures.app_offset ?? -1) >= 0 ? figures.app_offset! : (figures.committed_offset ?? -1) >= 0 ? figures.committed_offset! : undefined;
      if (assigned.has(partition) && position !== undefined && (figures.ls_offset ?? -1) >= 0) metrics.consumerLag.set(labels, Math.max(0, figures.ls_offset! - position));
      else metrics.consumerLag.remove(labels);
    }
  }
  const pendingRebalances: Array<{ kind: 'assign' | 'revoke'; partitions: number[] }> = [];
  let consumer: Consumer | undefined;
  let dlqProducer: BatchProducer | undefined;
  let txProducer: TransactionalProducer | undefined;
  let handler: StreamHandler | undefined;
  let running = false;
  let leaving = false;
  let loopDone: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  let fail: (error: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});

  const call = <T>(fn: (cb: (err: unknown, value?: T) => void) => void) =>
    new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));

  /**
   * Offsets are committed after the output is durable and idempotent, so a failed commit (a
   * rebalance under way, a coordinator moving) only means some records are read again and
   * skipped or rewritten as no-ops: it is logged, never a reason to fail the job.
   */
  const commitOffsets = (offsets: Array<{ topic: string; partition: number; offset: number }>) =>
    call<void>((cb) => consumer!.commitCb(offsets, (err) => cb(err))).catch((error: unknown) => {
      metrics.errors.inc({ ...job, kind: 'offset_commit' });
      log.warn('offset commit failed; the records will be read again and skipped', { offsets: offsets.map((o) => `${o.partition}@${o.offset}`).join(','), error: errorMessage(error) });
    });

  const controls: StreamJobControls = {
    log,
    jobName: options.name,
    commit: (partition, nextOffset) => commitOffsets([{ topic: options.topic, partition, offset: nextOffset }]),
    async seek(partition, offset) {
      if (!assigned.has(partition)) return;
      await call((cb) => consumer!.seek({ topic: options.topic, partition, offset }, 5_000, cb));
      // a seek back is ours, not a topic reset
      positions.set(partition, offset - 1);
    },
    logEnd: (partition) =>
      retry(
        () => call<{ highOffset: number }>((cb) => consumer!.queryWatermarkOffsets(options.topic, partition, 10_000, cb)).then((w) => w.highOffset),
        outageRetry('log end query'),
      ),
    topicId: () =>
      retry(async () => {
        metadataAdmin ??= createAdmin(config, `${options.name}-metadata`);
        const metadata = await metadataAdmin.metadata({ topics: [options.topic], forceUpdate: true });
        const topic = metadata.topics.get(options.topic);
        if (!topic) throw new LakestreamError('KAFKA_ERROR', `topic ${options.topic} does not exist`, { retriable: true, context: { topic: options.topic } });
        return topic.id;
      }, outageRetry('topic id query')),
  };
  let metadataAdmin: Admin | undefined;

  /**
   * The last offset read of each assigned partition. Nothing here seeks, so within an assignment
   * offsets only grow; one that goes back means librdkafka reset the position: the topic was
   * deleted and recreated (or truncated) under the job. Skipping or re-reading would be silent,
   * so the job stops and says so.
   */
  const positions = new Map<number, number>();
  function checkPositions(messages: Message[]): void {
    const wentBack = new Map<number, { from: number; to: number }>();
    for (const message of messages) {
      const last = positions.get(message.partition);
      if (last !== undefined && message.offset <= last && !wentBack.has(message.partition)) wentBack.set(message.partition, { from: last, to: message.offset });
      positions.set(message.partition, message.offset);
    }
    if (wentBack.size) throw topicReset(options.topic, [...wentBack].map(([partition, { from, to }]) => `partition ${partition} from offset ${from} back to ${to}`));
  }

  function onRebalance(this: KafkaConsumer, err: { code: number }, assignment: Array<{ topic: string; partition: number }>) {
    const partitions = assignment.map((tp) => tp.partition);
    // offsets read before this rebalance say nothing about the next assignment's (cleared now, not
    // when the loop gets to the event: a fetch may come first)
    for (const p of partitions) positions.delete(p);
    if (err.code === ASSIGN) {
      this.assign(assignment);
      for (const p of partitions) assigned.add(p);
      pendingRebalances.push({ kind: 'assign', partitions });
      metrics.assignedPartitions.set(job, assigned.size);
    } else if (err.code === REVOKE) {
      if (leaving) {
        // stop() already let the handler finish every partition
        this.unassign();
        assigned.clear();
      } else {
        // librdkafka waits for unassign(): the loop first lets the handler finish these partitions
        pendingRebalances.push({ kind: 'revoke', partitions });
      }
    } else {
      log.error('rebalance error', { code: err.code });
    }
  }

  async function applyRebalances(): Promise<void> {
    while (pendingRebalances.length) {
      const event = pendingRebalances.shift()!;
      if (event.kind === 'assign') {
        for (const p of event.partitions) positions.delete(p);
        log.info('partitions assigned', { partitions: event.partitions });
        // restoring state right after an outage may time out while the cluster settles; a restore
        // replaces the partitions' state, so it can simply run again
        // (any of librdkafka's errors: a restore only reads, and the next attempt uses a new client)
        await retry(async () => handler!.assigned?.(event.partitions), {
          ...outageRetry('restore'),
          shouldRetry: (error) => !notAuthorized(error, config, '') && (isRetriable(error) || typeof (error as { code?: unknown } | null)?.code === 'number'),
        });
      } else {
        log.info('partitions revoked', { partitions: event.partitions });
        try {
          await handler!.revoked?.(event.partitions);
        } catch (error) {
          // The next owner starts from what is committed; nothing is lost, some work is redone.
          log.warn('handing over revoked partitions failed', { partitions: event.partitions, error: errorMessage(error) });
        }
        consumer!.unassign();
        for (const p of event.partitions) assigned.delete(p);
        metrics.assignedPartitions.set(job, assigned.size);
      }
    }
  }

  /** Splits a fetch into per-partition batches of decoded valid records, and dead letters. */
  async function decodeFetch(messages: Message[]): Promise<{ batches: PartitionBatch[]; letters: OutgoingMessage[] }> {
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
        const pending = context.decode(message.value);
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
        };
        if (handler!.accept) await handler!.accept(record);
        batch.records.push(record);
      } catch (error) {
        if (!isPoison(error)) throw error;
        letters.push(deadLetters.letter(message, error));
      }
    }
    return { batches: [...byPartition.values()], letters };
  }

  /**
   * A failed transaction is aborted and the batch retried, unless librdkafka calls the error
   * fatal (fenced by a newer instance, or the producer unusable): a lost coordinator or a broker
   * transport failure only means the transaction did not happen. An abort that itself failed is
   * retried before the next transaction begins.
   */
  const newTransactionalProducer = () => createTransactionalProducer(config, options.transactionalId!, { lingerMs: profile.lingerMs });
  let abortPending = false;
  /**
   * A fatal error leaves the producer unusable: a new one with the same transactional id aborts
   * whatever was open and the batch is retried. That includes a fence: the coordinator also
   * bumps the producer's epoch when it times out a transaction that an outage held open longer
   * than transaction.timeout.ms. A zombie cannot commit through a new producer either, because
   * offsets go into the transaction with the consumer's group generation (KIP-447), which the
   * broker checks. Fenced three times in five minutes means another live process shares our
   * transactional id (two instances with one `--instance`): that fails the job.
   */
  let producerBroken = false;
  const fences: number[] = [];
  const fencedCodes: number[] = [kafkaJavascript.CODES.ERRORS.ERR__FENCED, kafkaJavascript.CODES.ERRORS.ERR_PRODUCER_FENCED, kafkaJavascript.CODES.ERRORS.ERR_INVALID_PRODUCER_EPOCH];
  const retriableUnlessFatal = (error: unknown) => {
    const kafkaError = error as { code?: unknown; isFatal?: boolean } | null;
    // only librdkafka's own errors (numeric codes); a handler's bug stays what it is
    if (!kafkaError || typeof kafkaError.code !== 'number') return error;
    if (fencedCodes.includes(kafkaError.code)) {
      fences.push(Date.now());
      while (fences[0]! < Date.now() - 5 * 60_000) fences.shift();
      if (fences.length >= 3) {
        return new LakestreamError('KAFKA_ERROR', `fenced ${fences.length} times in 5 minutes: another process runs with transactional id ${options.transactionalId} (${errorMessage(error)})`, { cause: error });
      }
      producerBroken = true;
    } else if (kafkaError.isFatal) {
      producerBroken = true;
    }
    return new LakestreamError('KAFKA_ERROR', `transaction aborted: ${errorMessage(error)}`, { cause: error, retriable: true });
  };

  /** Where the batch under way stands, for the log of one that takes unusually long. */
  let phase = 'idle';

  async function processTransactional(batches: PartitionBatch[], letters: OutgoingMessage[]): Promise<void> {
    phase = 'starting the transaction';
    if (producerBroken) {
      await txProducer!.close().catch(() => {});
      log.warn('transactional producer unusable after a fatal error; starting a new one', { transactionalId: options.transactionalId });
      txProducer = await newTransactionalProducer().catch((error: unknown) => {
        throw new LakestreamError('KAFKA_ERROR', `could not start a new transactional producer: ${errorMessage(error)}`, { cause: error, retriable: true });
      });
      producerBroken = false;
      abortPending = false;
    }
    const producer = txProducer!;
    if (abortPending) {
      await producer.abort().catch((error: unknown) => {
        throw retriableUnlessFatal(error);
      });
      abortPending = false;
    }
    await producer.begin().catch((error: unknown) => {
      throw retriableUnlessFatal(error);
    });
    const produced = new Map<string, number>();
    try {
      phase = 'handling the batch';
      for (const letter of letters) await producer.produce(deadLetterTopic, letter);
      await handler!.handle(batches, {
        produce: (topic, message) => {
          produced.set(topic, (produced.get(topic) ?? 0) + 1);
          return producer.produce(topic, message);
        },
      });
      phase = 'sending offsets to the transaction';
      await producer.sendOffsets(
        batches.map((b) => ({ topic: b.topic, partition: b.partition, offset: b.lastOffset + 1 })),
        consumer!,
      );
      phase = 'committing';
      const commitStarted = performance.now();
      await producer.commit();
      stats.commitMs += performance.now() - commitStarted;
      metrics.transactionCommitDuration.observe(job, secondsSince(commitStarted));
      for (const [topic, count] of produced) metrics.recordsOut.inc({ ...job, output: topic }, count);
    } catch (error) {
      phase = 'aborting';
      await producer.abort().catch((cause: unknown) => {
        abortPending = true;
        log.warn('abort failed; retrying it before the next transaction', { error: errorMessage(cause) });
      });
      handler!.aborted?.(batches.map((b) => b.partition));
      const refused = notAuthorized(error, config, `write ${options.name}'s transaction (transactional id ${options.transactionalId})`);
      if (refused) throw refused;
      if (lostGroupMembership(error)) throw new GroupMembershipLost(error);
      throw retriableUnlessFatal(error);
    }
  }

  /**
   * A consumer that could not poll for longer than its session (a batch waiting out an outage) is
   * out of its group: every offset it sends into a transaction is refused (UNKNOWN_MEMBER_ID) for
   * as long as it retries, because only polling rejoins. So the batch is dropped instead, its
   * partitions rewound to the batch's first offsets, and the loop polls: the consumer rejoins, and
   * the records are read again (after a rebalance from the committed offsets, which are the same).
   */
  async function rewind(messages: Message[]): Promise<void> {
    const first = new Map<number, number>();
    for (const message of messages) if (!first.has(message.partition) || message.offset < first.get(message.partition)!) first.set(message.partition, message.offset);
    for (const [partition, offset] of first) {
      try {
        await call((cb) => consumer!.seek({ topic: options.topic, partition, offset }, 5_000, cb));
        positions.set(partition, offset - 1);
      } catch (error) {
        // a partition no longer assigned refuses the seek: its next owner starts from the committed
        // offset. One still ours would carry on past the dropped records: stop rather than lose them.
        if (assigned.has(partition)) {
          throw new LakestreamError('KAFKA_ERROR', `could not rewind ${options.topic} partition ${partition} to offset ${offset} after dropping a batch: ${errorMessage(error)}`, { cause: error });
        }
      }
    }
  }

  /**
   * How a batch waits out an outage: a retriable failure (a server unreachable, a timeout) is
   * retried with back-off up to 15 s, logged each time, until JOB_OUTAGE_TIMEOUT_S has passed;
   * meanwhile nothing is consumed, so memory stays at what was fetched. Other errors fail at once.
   */
  function outageRetry(what: string) {
    const since = Date.now();
    return {
      retries: Number.POSITIVE_INFINITY,
      timeoutMs: context.config.JOB_OUTAGE_TIMEOUT_S * 1000,
      initialDelayMs: 200,
      maxDelayMs: 15_000,
      onRetry: (error: unknown, attempt: number, delayMs: number) => {
        metrics.errors.inc({ ...job, kind: what.replaceAll(' ', '_') });
        log.warn(`${what} failed; retrying`, { attempt, delayMs, waitedMs: Date.now() - since, error: errorMessage(error) });
      },
    };
  }

  async function processFetch(messages: Message[]): Promise<void> {
    const startedAt = performance.now();
    phase = 'decoding';
    const watchdog = setInterval(() => log.warn('batch still under way', { phase, seconds: Math.round((performance.now() - startedAt) / 1000), records: messages.length }), 60_000);
    try {
      await processFetchUnwatched(messages, startedAt);
    } finally {
      clearInterval(watchdog);
      phase = 'idle';
    }
  }

  async function processFetchUnwatched(messages: Message[], startedAt: number): Promise<void> {
    const retrying = outageRetry('batch');
    checkPositions(messages);
    const { batches, letters } = await retry(() => decodeFetch(messages), retrying);
    if (options.commit === 'transaction') {
      try {
        await retry(() => processTransactional(batches, letters), { ...retrying, shouldRetry: (error) => !(error instanceof GroupMembershipLost) && isRetriable(error) });
      } catch (error) {
        if (!(error instanceof GroupMembershipLost)) throw error;
        log.warn('out of the consumer group after waiting out an outage: the batch is dropped, read again after rejoining', { error: errorMessage(error.cause) });
        await rewind(messages);
        return;
      }
    } else {
      if (letters.length) {
        await retry(async () => {
          const { failed: undelivered, firstError } = await dlqProducer!.send(deadLetterTopic, letters);
          if (undelivered) throw new LakestreamError('DELIVERY_FAILED', `${undelivered} dead letters not delivered to ${deadLetterTopic}: ${errorMessage(firstError)}`, { retriable: true });
        }, retrying);
      }
      await retry(() => handler!.handle(batches, { produce: () => { throw new LakestreamError('USAGE', `${options.name}: produce() needs the transaction commit mode`); } }), retrying);
      if (options.commit === 'after-batch') {
        await commitOffsets(batches.map((b) => ({ topic: b.topic, partition: b.partition, offset: b.lastOffset + 1 })));
      }
    }
    stats.recordsIn += messages.length;
    stats.batches++;
    stats.batchMs += performance.now() - startedAt;
    metrics.recordsIn.inc({ ...job, topic: options.topic }, messages.length);
    metrics.batchDuration.observe(job, secondsSince(startedAt));
  }

  async function loop(): Promise<void> {
    let lastTick = Date.now();
    let firstSeen = false;
    while (running) {
      const messages = await call<Message[]>((cb) => consumer!.consume(maxBatchSize, cb)).catch((error: unknown) => {
        // librdkafka would report a refused group or topic on every poll, for ever
        const refused = notAuthorized(error, config, `read ${options.topic} in consumer group ${options.name}`);
        if (refused) throw refused;
        if (!isRetriable(error) && (error as { isFatal?: boolean }).isFatal) throw error;
        metrics.errors.inc({ ...job, kind: 'consume' });
        log.warn('consume failed; polling again', { error: errorMessage(error) });
        return [] as Message[];
      });
      if (messages.length) {
        if (!firstSeen) {
          firstSeen = true;
          log.info('first records', { at: Date.now() });
        }
        // The assignment came with this fetch: handlers set up (restore) before they see records.
        // A revocation waits until the batch is handled, while the partitions are still ours.
        if (!pendingRebalances.some((event) => event.kind === 'revoke')) await applyRebalances();
        await processFetch(messages);
      }
      await applyRebalances();
      if (handler!.tick && Date.now() - lastTick >= tickMs) {
        lastTick = Date.now();
        await retry(() => handler!.tick!(), outageRetry('tick'));
      }
    }
  }

  return {
    name: options.name,
    failed,
    reload: async () => {
      await handler?.reload?.();
    },
    async start() {
      if (options.commit === 'transaction') {
        if (!options.transactionalId) throw new LakestreamError('USAGE', `${options.name}: the transaction commit mode needs a transactionalId`);
        // initialising the transactional id aborts a predecessor's open transaction
        txProducer = await newTransactionalProducer();
      } else {
        dlqProducer = await createBatchProducer(config, `${options.name}-dlq`, { lingerMs: profile.lingerMs });
      }
      handler = createHandler(controls);
      consumer = new kafkaJavascript.KafkaConsumer(
        {
          ...librdkafkaBase(config),
          'group.id': options.name,
          'client.id': options.name,
          'enable.auto.commit': false,
          'enable.auto.offset.store': false,
          ...consumerFetchSettings(profile),
          // a batch waiting out an outage does not poll: stay in the group for as long as it may wait
          'max.poll.interval.ms': config.JOB_OUTAGE_TIMEOUT_S ? Math.min(Math.max(300_000, (config.JOB_OUTAGE_TIMEOUT_S + 60) * 1000), 86_400_000) : 86_400_000,
          rebalance_cb: onRebalance,
          'statistics.interval.ms': 5_000,
        },
        { 'auto.offset.reset': 'earliest' },
      ) as Consumer;
      consumer.on('event.stats', (statistics) => {
        try {
          exportLag(statistics as { message?: string });
        } catch (error) {
          log.debug('unreadable consumer statistics', { error: errorMessage(error) });
        }
      });
      await connectOrExplain(consumer as unknown as kafkaJavascript.Client<string>, config, 15_000);
      // wait for the first record only, then take whatever else is already fetched
      consumer.setDefaultConsumeTimeout(profile.pollTimeoutMs);
      consumer.setDefaultIsTimeoutOnlyForFirstMessage(true);
      consumer.subscribe([options.topic]);
      running = true;
      loopDone = loop().catch((error: unknown) => {
        running = false;
        metrics.errors.inc({ ...job, kind: 'fatal' });
        log.error('job failed', { error: errorMessage(error) });
        fail(error);
      });
      log.info('started', { commit: options.commit, maxBatchSize });
    },
    stop() {
      stopped ??= (async () => {
        running = false;
        await loopDone;
        let closeError: unknown;
        if (handler) {
          await applyRebalances().catch(() => {});
          try {
            await handler.close?.();
          } catch (error) {
            closeError = error;
          }
        }
        leaving = true;
        if (consumer) await call((cb) => consumer!.disconnect((err) => cb(err))).catch(() => {});
        await dlqProducer?.close();
        await txProducer?.close();
        await metadataAdmin?.close().catch(() => {});
        log.info('stopped', { ...this.stats() });
        if (closeError) throw closeError;
      })();
      return stopped;
    },
    stats: () => ({
      recordsIn: stats.recordsIn,
      batches: stats.batches,
      // means since the start: where a batch's time goes (commit = Kafka transaction commit)
      meanBatchMs: stats.batches ? Math.round((stats.batchMs / stats.batches) * 10) / 10 : 0,
      ...(options.commit === 'transaction' ? { meanCommitMs: stats.batches ? Math.round((stats.commitMs / stats.batches) * 10) / 10 : 0 } : {}),
      deadLetters: deadLetters.counts(), assigned: [...assigned].sort((a, b) => a - b), ...handler?.stats?.() }),
  };
}

/**
 * Runs jobs in this process until SIGTERM or SIGINT, or until one fails for good: then every job
 * makes its output durable, commits and leaves its group, and the process exits (0 after a
 * signal, 1 after a failure or a stop that did not finish within `stopTimeoutMs`).
 */
export async function runJobsUntilSignal(jobs: StreamJob[], log: Logger, options: { stopTimeoutMs?: number; statsIntervalMs?: number; onStopped?: () => Promise<void> } = {}): Promise<void> {
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  let stopping = false;
  const stopAll = async (reason: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { reason });
    const timeout = setTimeout(() => {
      log.error('jobs did not stop in time; exiting', { timeoutMs: stopTimeoutMs });
      process.exit(1);
    }, stopTimeoutMs);
    const results = await Promise.allSettled(jobs.map((job) => job.stop()));
    await options.onStopped?.().catch(() => {});
    clearTimeout(timeout);
    for (const [index, result] of results.entries()) {
      if (result.status === 'rejected') log.error('stop failed', { job: jobs[index]!.name, error: errorMessage(result.reason) });
    }
    log.info('stopped', { peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) });
    process.exit(results.some((result) => result.status === 'rejected') ? 1 : exitCode);
  };
  process.on('SIGTERM', () => void stopAll('SIGTERM', 0));
  process.on('SIGINT', () => void stopAll('SIGINT', 0));
  process.on('SIGHUP', () => {
    log.info('reloading', { signal: 'SIGHUP' });
    for (const job of jobs) job.reload().catch((error: unknown) => log.warn('reload failed', { job: job.name, error: errorMessage(error) }));
  });
  for (const job of jobs) {
    job.failed.catch((error: unknown) => void stopAll(`${job.name} failed: ${errorMessage(error)}`, 1));
    await job.start();
    log.info('job started', { job: job.name });
  }
  setInterval(() => {
    for (const job of jobs) log.info('stats', { job: job.name, ...job.stats() });
    log.info('memory', memoryFigures());
  }, options.statsIntervalMs ?? 10_000).unref();
}

/**
 * Where the process's memory is, in MB: the V8 heap (capped by --max-old-space-size), memory
 * outside it that V8 tracks (Buffers: fetched Kafka messages, Parquet file bodies), and the rest
 * of the resident set (librdkafka's queues, DuckDB, code).
 */
export function memoryFigures(): Record<string, number> {
  const m = process.memoryUsage();
  const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
  return {
    rssMb: mb(m.rss),
    heapUsedMb: mb(m.heapUsed),
    heapTotalMb: mb(m.heapTotal),
    externalMb: mb(m.external),
    arrayBuffersMb: mb(m.arrayBuffers),
    otherMb: mb(m.rss - m.heapTotal - m.external),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}
