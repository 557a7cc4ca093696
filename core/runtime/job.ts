import kafkaJavascript, { type KafkaConsumer, type Message } from '@confluentinc/kafka-javascript';
import type { Admin } from '@platformatic/kafka';
import { createBatchSizer, type BatchSizer } from './batch-size.ts';
import { fromCallback, withTimeout } from '../async.ts';
import { createDeadLetters, type DeadLetters } from '../dead-letter.ts';
import { LakestreamError, errorMessage, isRetriable } from '../errors.ts';
import { createAdmin, librdkafkaBase } from '../kafka.ts';
import { connectOrExplain, notAuthorized } from '../kafka-probe.ts';
import { metrics, secondsSince } from '../metrics.ts';
import { consumerFetchSettings, profileSettings } from '../profile.ts';
import { retry, type RetryOptions } from '../retry.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { createCommitStrategy, type CommitStrategy } from './commit.ts';
import { createFetchDecoder, type DecodedFetch } from './decode.ts';
import { exportLag } from './lag.ts';
import { PositionTracker, type DeletedUnread } from './positions.ts';
import { fencedInstance, leaveAsStaticMember } from './membership.ts';
import { createRebalanceQueue, type RebalanceQueue } from './rebalance.ts';
import type { RuntimeContext, StreamHandler, StreamJob, StreamJobControls, StreamJobOptions, StreamJobStats, TopicOffset } from './types.ts';

/** Methods of the binding's consumer that its type declarations leave out. */
type Consumer = KafkaConsumer & {
  commitCb(offsets: TopicOffset[], cb: (err: unknown) => void): void;
  setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void;
};

/**
 * How a batch waits out an outage: a retriable failure (a server unreachable, a timeout) is
 * retried with back-off up to 15 s, logged each time, until JOB_OUTAGE_TIMEOUT_S has passed;
 * meanwhile nothing is consumed, so memory stays at what was fetched. Other errors fail at once.
 */
function outageRetryOf(what: string, config: Config, log: Logger, jobName: string): RetryOptions {
  const since = Date.now();
  return {
    retries: Number.POSITIVE_INFINITY,
    timeoutMs: config.JOB_OUTAGE_TIMEOUT_S * 1000,
    initialDelayMs: 200,
    maxDelayMs: 15_000,
    onRetry: (error: unknown, attempt: number, delayMs: number) => {
      metrics.errors.inc({ job: jobName, kind: what.replaceAll(' ', '_') });
      log.warn(`${what} failed; retrying`, { attempt, delayMs, waitedMs: Date.now() - since, error: errorMessage(error) });
    },
  };
}

/**
 * The job's consumer: manual offsets (commits follow durable output), the profile's fetch
 * settings, lag exported from librdkafka's statistics, rebalances through the queue.
 */
function createJobConsumer(options: StreamJobOptions, config: Config, profile: ReturnType<typeof profileSettings>, rebalances: RebalanceQueue, assigned: ReadonlySet<number>, log: Logger): Consumer {
  const consumer = new kafkaJavascript.KafkaConsumer(
    {
      ...librdkafkaBase(config),
      'group.id': options.name,
      'client.id': options.name,
      ...(options.instance !== undefined ? { 'group.instance.id': staticMemberId(options) } : {}),
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      ...consumerFetchSettings(profile),
      // a batch waiting out an outage does not poll: stay in the group for as long as it may wait
      'max.poll.interval.ms': config.JOB_OUTAGE_TIMEOUT_S ? Math.min(Math.max(300_000, (config.JOB_OUTAGE_TIMEOUT_S + 60) * 1000), 86_400_000) : 86_400_000,
      rebalance_cb: rebalances.onRebalance,
      'statistics.interval.ms': 5_000,
    },
    { 'auto.offset.reset': 'earliest' },
  ) as Consumer;
  consumer.on('event.stats', (statistics) => {
    try {
      exportLag(statistics as { message?: string }, options.name, options.topic, assigned);
    } catch (error) {
      log.debug('unreadable consumer statistics', { error: errorMessage(error) });
    }
  });
  return consumer;
}

/**
 * A consumer that could not poll for longer than its session (a batch waiting out an outage) is
 * out of its group: every offset it sends into a transaction is refused (UNKNOWN_MEMBER_ID) for
 * as long as it retries, because only polling rejoins. So the batch is dropped instead, its
 * partitions rewound to the batch's first offsets, and the loop polls: the consumer rejoins, and
 * the records are read again (after a rebalance from the committed offsets, which are the same).
 */
async function rewind(messages: Message[], topic: string, seek: (partition: number, offset: number) => Promise<void>, assigned: ReadonlySet<number>): Promise<void> {
  const first = new Map<number, number>();
  for (const message of messages) if (!first.has(message.partition) || message.offset < first.get(message.partition)!) first.set(message.partition, message.offset);
  for (const [partition, offset] of first) {
    try {
      await seek(partition, offset);
    } catch (error) {
      // a partition no longer assigned refuses the seek: its next owner starts from the committed
      // offset. One still ours would carry on past the dropped records: stop rather than lose them.
      if (assigned.has(partition)) {
        throw new LakestreamError('KAFKA_ERROR', `could not rewind ${topic} partition ${partition} to offset ${offset} after dropping a batch: ${errorMessage(error)}`, { cause: error });
      }
    }
  }
}

/** The consumer's static group membership id, when the job runs as a named instance. */
function staticMemberId(options: StreamJobOptions): string {
  return `${options.name}-${options.instance}`;
}

/**
 * An admin client made on first use: the topic's id (the lake sink's topic-reset check) and a
 * static member's leave on a clean stop.
 */
function jobAdmin(options: StreamJobOptions, config: Config) {
  let client: Admin | undefined;
  const admin = () => (client ??= createAdmin(config, `${options.name}-metadata`));
  return {
    async topicId(): Promise<string> {
      const metadata = await admin().metadata({ topics: [options.topic], forceUpdate: true });
      const topic = metadata.topics.get(options.topic);
      if (!topic) throw new LakestreamError('KAFKA_ERROR', `topic ${options.topic} does not exist`, { retriable: true, context: { topic: options.topic } });
      return topic.id;
    },
    leaveGroup: () => withTimeout(leaveAsStaticMember(admin(), options.name, staticMemberId(options)), 10_000, `group ${options.name}'s coordinator`),
    close: async () => {
      await client?.close().catch(() => {});
    },
  };
}

/** librdkafka's logical offset for a partition's first record (RD_KAFKA_OFFSET_BEGINNING). */
const OFFSET_BEGINNING = -2;

/** One poll: a refused group or topic, or a fatal error, fails the job; anything else is an empty poll. */
function poll(consumer: Consumer, maxBatchSize: number, options: StreamJobOptions, config: Config, log: Logger): Promise<Message[]> {
  return fromCallback<Message[]>((cb) => consumer.consume(maxBatchSize, cb)).catch((error: unknown) => {
    // librdkafka would report a refused group or topic on every poll, for ever
    const refused = notAuthorized(error, config, `read ${options.topic} in consumer group ${options.name}`);
    if (refused) throw refused;
    const fatal = (error as { code?: unknown }).code === kafkaJavascript.CODES.ERRORS.ERR__FATAL;
    // A static member's consumer is fenced when another process joins with its group.instance.id:
    // librdkafka's only fatal consumer error, reported from then on as a bare "Fatal error" (the
    // binding does not expose the reason). A new consumer would fence the other in turn.
    if (options.instance !== undefined && (fatal || fencedInstance(error))) {
      throw new LakestreamError('KAFKA_ERROR', `another process joined group ${options.name} as instance ${options.instance} (group.instance.id ${staticMemberId(options)}); give each process of a job its own --instance`, {
        cause: error,
        context: { fencedInstance: true },
      });
    }
    if (fatal) throw new LakestreamError('KAFKA_ERROR', `the consumer of group ${options.name} failed for good: ${errorMessage(error)}`, { cause: error });
    if (!isRetriable(error) && (error as { isFatal?: boolean }).isFatal) throw error;
    metrics.errors.inc({ job: options.name, kind: 'consume' });
    log.warn('consume failed; polling again', { error: errorMessage(error) });
    return [] as Message[];
  });
}

interface BatchDeps {
  options: StreamJobOptions;
  log: Logger;
  positions: PositionTracker;
  /** A partition's first offset as of the last fetch (librdkafka's cached low watermark). */
  logStart: (partition: number) => number | undefined;
  reportDeletedUnread: (range: DeletedUnread) => void;
  strategy: CommitStrategy;
  stats: { recordsIn: number; batches: number; batchMs: number };
  decode: (messages: Message[]) => Promise<DecodedFetch>;
  outageRetry: (what: string) => RetryOptions;
  rewind: (messages: Message[]) => Promise<void>;
  /** Seeks the fetch's partitions to the group's committed offsets. */
  rewindToCommitted: (messages: Message[]) => Promise<void>;
  setPhase: (phase: string) => void;
  phase: () => string;
}

/** One fetch: checked for a topic reset, decoded, handled and made durable by the commit strategy. */
async function processFetch(messages: Message[], deps: BatchDeps): Promise<void> {
  const { options, log, stats } = deps;
  const job = { job: options.name };
  const startedAt = performance.now();
  deps.setPhase('decoding');
  const watchdog = setInterval(() => log.warn('batch still under way', { phase: deps.phase(), seconds: Math.round((performance.now() - startedAt) / 1000), records: messages.length }), 60_000);
  try {
    const retrying = deps.outageRetry('batch');
    for (const range of deps.positions.check(messages, deps.logStart)) deps.reportDeletedUnread(range);
    const fetch = await retry(() => deps.decode(messages), retrying);
    const outcome = await deps.strategy.process(fetch, retrying);
    if (outcome === 'dropped') {
      await deps.rewind(messages);
      return;
    }
    if (outcome === 'unsettled') {
      await retry(() => deps.rewindToCommitted(messages), retrying);
      return;
    }
    stats.recordsIn += messages.length;
    stats.batches++;
    stats.batchMs += performance.now() - startedAt;
    metrics.recordsIn.inc({ ...job, topic: options.topic }, messages.length);
    metrics.batchDuration.observe(job, secondsSince(startedAt));
  } finally {
    clearInterval(watchdog);
    deps.setPhase('idle');
  }
}

/**
 * The one runtime of the platform's stream jobs. It owns the consumer (librdkafka's callback API:
 * a batch spans every assigned partition), decoding (synchronous once a schema id is known),
 * the business rules the catalog declares for the topic, poison records and their dead-letter
 * path, retries of transient failures, rebalances, start/stop and stats. A job is a handler:
 * what it does with a batch of decoded records, and how its output becomes durable (its commit
 * mode, see `CommitMode`). The parts live beside this file: decoding (decode.ts), commit
 * strategies (commit.ts) and the transactional producer's state machine (transactions.ts),
 * rebalances (rebalance.ts), topic-reset detection (positions.ts) and lag (lag.ts).
 */
export function createStreamJob(options: StreamJobOptions, context: RuntimeContext, createHandler: (controls: StreamJobControls) => StreamHandler): StreamJob {
  return new StreamJobRuntime(options, context, createHandler);
}

class StreamJobRuntime implements StreamJob {
  readonly name: string;
  readonly failed: Promise<never>;
  private fail: (error: unknown) => void = () => {};
  private readonly config: Config;
  private readonly profile: ReturnType<typeof profileSettings>;
  private readonly log: Logger;
  private readonly deadLetters: DeadLetters;
  private readonly batchSize: BatchSizer;
  private readonly tickMs: number;
  private readonly counters = { recordsIn: 0, batches: 0, batchMs: 0 };
  private readonly assigned = new Set<number>();
  private readonly positions: PositionTracker;
  private readonly admin: ReturnType<typeof jobAdmin>;
  private readonly strategy: CommitStrategy;
  private readonly rebalances: RebalanceQueue;
  private readonly controls: StreamJobControls;
  private readonly batchDeps: BatchDeps;
  private consumer: Consumer | undefined;
  private handler: StreamHandler | undefined;
  private decodeFetch: ReturnType<typeof createFetchDecoder> | undefined;
  private running = false;
  private leaving = false;
  /** Another member holds our group.instance.id: leaving the group would remove that one. */
  private fencedOut = false;
  private loopDone: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  /** Where the batch under way stands, for the log of one that takes unusually long. */
  private phase = 'idle';
  private phaseSince = performance.now();
  /** Time spent in each phase of a batch since the start (the stats show it per batch). */
  private readonly phaseMs = new Map<string, number>();

  private enterPhase(next: string): void {
    const now = performance.now();
    if (this.phase !== 'idle') this.phaseMs.set(this.phase, (this.phaseMs.get(this.phase) ?? 0) + now - this.phaseSince);
    this.phase = next;
    this.phaseSince = now;
  }

  constructor(
    private readonly options: StreamJobOptions,
    private readonly context: RuntimeContext,
    private readonly createHandler: (controls: StreamJobControls) => StreamHandler,
  ) {
    const { config, catalog } = context;
    this.name = options.name;
    this.config = config;
    this.profile = profileSettings(config.LAKESTREAM_PROFILE);
    this.log = context.log.child({ job: options.name, topic: options.topic });
    this.deadLetters = createDeadLetters(options.name, this.log);
    // a job given its batch size keeps it; the profile's grows behind a backlog
    this.batchSize = options.maxBatchSize ? createBatchSizer(options.maxBatchSize) : createBatchSizer(this.profile.maxBatchSize, this.profile.backlogBatchSize);
    this.tickMs = options.tickMs ?? 1_000;
    this.positions = new PositionTracker(options.topic);
    this.admin = jobAdmin(options, config);
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => {});
    const log = this.log;
    this.controls = {
      log,
      jobName: options.name,
      commit: (partition, nextOffset) => this.commitOffsets([{ topic: options.topic, partition, offset: nextOffset }]),
      seek: async (partition, offset) => {
        if (this.assigned.has(partition)) await this.seek(partition, offset);
      },
      logEnd: (partition) =>
        retry(() => fromCallback<{ highOffset: number }>((cb) => this.consumer!.queryWatermarkOffsets(options.topic, partition, 10_000, cb)).then((w) => w.highOffset), this.outageRetry('log end query')),
      topicId: () => retry(() => this.admin.topicId(), this.outageRetry('topic id query')),
    };
    this.strategy = createCommitStrategy({
      mode: options.commit,
      jobName: options.name,
      transactionalId: options.commit === 'transaction' ? `${options.name}-${options.instance ?? '0'}` : undefined,
      deadLetterTopic: catalog.deadLetterTopic(options.topic),
      deadLetters: this.deadLetters,
      config,
      lingerMs: this.profile.lingerMs,
      log,
      handler: () => this.handler!,
      consumer: () => this.consumer!,
      commitOffsets: (offsets) => this.commitOffsets(offsets),
      onPhase: (now) => this.enterPhase(now),
    });
    this.rebalances = createRebalanceQueue({
      jobName: options.name,
      log,
      positions: this.positions,
      assigned: this.assigned,
      handler: () => this.handler!,
      expectCommitted: (partitions) => this.expectCommitted(partitions),
      leaving: () => this.leaving,
      // restoring state right after an outage may time out while the cluster settles; a restore
      // replaces the partitions' state, so it can simply run again (any of librdkafka's errors:
      // a restore only reads, and the next attempt uses a new client)
      restore: (partitions) =>
        retry(async () => this.handler!.assigned?.(partitions), {
          ...this.outageRetry('restore'),
          shouldRetry: (error) => !notAuthorized(error, config, '') && (isRetriable(error) || typeof (error as { code?: unknown } | null)?.code === 'number'),
        }),
    });
    this.batchDeps = {
      options,
      log,
      positions: this.positions,
      logStart: (partition) => {
        try {
          const { lowOffset } = this.consumer!.getWatermarkOffsets(options.topic, partition);
          return lowOffset >= 0 ? lowOffset : undefined;
        } catch {
          return undefined;
        }
      },
      reportDeletedUnread: (range) => this.reportDeletedUnread(range),
      strategy: this.strategy,
      stats: this.counters,
      decode: (messages) => this.decodeFetch!(messages),
      outageRetry: (what) => this.outageRetry(what),
      rewind: (messages) => rewind(messages, options.topic, (partition, offset) => this.seek(partition, offset), this.assigned),
      rewindToCommitted: (messages) => this.seekToCommitted([...new Set(messages.map((message) => message.partition))]),
      setPhase: (now) => this.enterPhase(now),
      phase: () => this.phase,
    };
  }

  private outageRetry(what: string): RetryOptions {
    return outageRetryOf(what, this.config, this.log, this.options.name);
  }

  /**
   * Offsets are committed after the output is durable and idempotent, so a failed commit (a
   * rebalance under way, a coordinator moving) only means some records are read again and
   * skipped or rewritten as no-ops: it is logged, never a reason to fail the job.
   */
  private commitOffsets(offsets: TopicOffset[]): Promise<void> {
    return fromCallback((cb) => this.consumer!.commitCb(offsets, (err) => cb(err))).catch((error: unknown) => {
      metrics.errors.inc({ job: this.options.name, kind: 'offset_commit' });
      this.log.warn('offset commit failed; the records will be read again and skipped', { offsets: offsets.map((o) => `${o.partition}@${o.offset}`).join(','), error: errorMessage(error) });
    });
  }

  /** The group's committed offsets of `partitions` (negative: none), read stable (KIP-447). */
  private committedOffsets(partitions: number[], timeoutMs: number): Promise<Array<{ partition: number; offset: number }>> {
    return fromCallback((cb) => this.consumer!.committed(partitions.map((partition) => ({ topic: this.options.topic, partition })), timeoutMs, cb));
  }

  /** Seeks partitions still ours to the group's committed offsets (read stable: KIP-447), or to their start where none is committed. */
  private async seekToCommitted(partitions: number[]): Promise<void> {
    const ours = partitions.filter((partition) => this.assigned.has(partition));
    if (!ours.length) return;
    const committed = await this.committedOffsets(ours, 10_000);
    for (const { partition, offset } of committed) {
      if (offset >= 0) await this.seek(partition, offset);
      else {
        await fromCallback((cb) => this.consumer!.seek({ topic: this.options.topic, partition, offset: OFFSET_BEGINNING }, 5_000, cb));
        this.positions.forget([partition]);
      }
    }
    this.log.info('read again from the committed offsets', { partitions: committed.map(({ partition, offset }) => `${partition}@${offset}`) });
  }

  /**
   * Where librdkafka resumes newly assigned partitions: their committed offsets, or the log start
   * if retention has passed them (then the records in between are reported here, where a quiet
   * partition would otherwise hide them until its next record). Only for that report, so a failed
   * query costs the check, not the job.
   */
  private async expectCommitted(partitions: number[]): Promise<void> {
    const { topic } = this.options;
    try {
      const committed = await this.committedOffsets(partitions, 5_000);
      await Promise.all(
        committed
          .filter(({ offset }) => offset >= 0)
          .map(async ({ partition, offset }) => {
            const { lowOffset } = await fromCallback<{ lowOffset: number }>((cb) => this.consumer!.queryWatermarkOffsets(topic, partition, 5_000, cb));
            const deleted = this.positions.resumeAt(partition, offset, lowOffset);
            if (deleted) this.reportDeletedUnread(deleted);
          }),
      );
    } catch (error) {
      this.log.debug('committed offsets of the new assignment unknown; a resume past them goes unnoticed until the next record', { partitions, error: errorMessage(error) });
    }
  }

  /**
   * auto.offset.reset has already moved the consumer on; the job goes on with what is left, but a
   * gap in its input is never silent.
   */
  private reportDeletedUnread({ partition, from, to }: DeletedUnread): void {
    metrics.offsetsDeletedUnread.inc({ job: this.options.name, topic: this.options.topic, partition: String(partition) }, to - from);
    this.log.error('records were deleted from the topic before this job read them: it resumes at the log start', { partition, from, to, offsetsLost: to - from });
  }

  private async seek(partition: number, offset: number): Promise<void> {
    await fromCallback((cb) => this.consumer!.seek({ topic: this.options.topic, partition, offset }, 5_000, cb));
    // a seek back is ours, not a topic reset
    this.positions.seeked(partition, offset);
  }

  private async loop(): Promise<void> {
    const consumer = this.consumer!;
    const handler = this.handler!;
    let lastTick = Date.now();
    let firstSeen = false;
    while (this.running) {
      const messages = await poll(consumer, this.batchSize.size, this.options, this.config, this.log);
      this.batchSize.observe(messages.length);
      if (messages.length) {
        if (!firstSeen) {
          firstSeen = true;
          this.log.info('first records', { at: Date.now() });
        }
        // The assignment came with this fetch: handlers set up (restore) before they see records.
        // A revocation waits until the batch is handled, while the partitions are still ours.
        if (!this.rebalances.revokePending()) await this.rebalances.apply(consumer);
        await processFetch(messages, this.batchDeps);
      }
      await this.rebalances.apply(consumer);
      if (handler.tick && Date.now() - lastTick >= this.tickMs) {
        lastTick = Date.now();
        await retry(() => handler.tick!(), this.outageRetry('tick'));
      }
    }
  }

  async reload(): Promise<void> {
    await this.handler?.reload?.();
  }

  async start(): Promise<void> {
    const { options, config, context, log } = this;
    await this.strategy.start();
    const handler = (this.handler = this.createHandler(this.controls));
    this.decodeFetch = createFetchDecoder({ decode: context.decode, rules: context.catalog.topicByName(options.topic)?.rules, accept: handler.accept?.bind(handler), deadLetters: this.deadLetters });
    const consumer = (this.consumer = createJobConsumer(options, config, this.profile, this.rebalances, this.assigned, log));
    await connectOrExplain(consumer as unknown as kafkaJavascript.Client<string>, config, 15_000);
    // wait for the first record only, then take whatever else is already fetched
    consumer.setDefaultConsumeTimeout(this.profile.pollTimeoutMs);
    consumer.setDefaultIsTimeoutOnlyForFirstMessage(true);
    consumer.subscribe([options.topic]);
    this.running = true;
    this.loopDone = this.loop().catch((error: unknown) => {
      this.running = false;
      this.fencedOut = (error as { context?: { fencedInstance?: unknown } }).context?.fencedInstance === true;
      metrics.errors.inc({ job: options.name, kind: 'fatal' });
      log.error('job failed', { error: errorMessage(error) });
      this.fail(error);
    });
    log.info('started', { commit: options.commit, maxBatchSize: this.batchSize.size });
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.running = false;
      await this.loopDone;
      let closeError: unknown;
      if (this.handler) {
        await this.rebalances.apply(this.consumer!).catch(() => {});
        try {
          await this.handler.close?.();
        } catch (error) {
          closeError = error;
        }
      }
      this.leaving = true;
      if (this.consumer) {
        await fromCallback((cb) => this.consumer!.disconnect((err) => cb(err))).catch(() => {});
        if (this.options.instance !== undefined && !this.fencedOut) {
          await this.admin.leaveGroup().catch((error: unknown) =>
            this.log.warn('could not leave the group; its partitions move to the other members after the session timeout', { error: errorMessage(error) }),
          );
        }
      }
      await this.strategy.close();
      await this.admin.close();
      this.log.info('stopped', { ...this.stats() });
      if (closeError) throw closeError;
    })();
    return this.stopped;
  }

  stats(): StreamJobStats {
    const stats = this.counters;
    return {
      recordsIn: stats.recordsIn,
      batches: stats.batches,
      // means since the start: where a batch's time goes (commit = Kafka transaction commit)
      meanBatchMs: stats.batches ? Math.round((stats.batchMs / stats.batches) * 10) / 10 : 0,
      batchSize: this.batchSize.size,
      // where a batch's time goes, per batch: decoding, handling, sending offsets, committing, …
      meanPhaseMs: Object.fromEntries([...this.phaseMs].map(([phase, ms]) => [phase, stats.batches ? Math.round((ms / stats.batches) * 10) / 10 : 0])),
      ...this.strategy.stats(stats.batches),
      deadLetters: this.deadLetters.counts(),
      assigned: [...this.assigned].sort((a, b) => a - b),
      ...this.handler?.stats?.(),
    };
  }
}
