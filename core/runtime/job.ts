import kafkaJavascript, { type KafkaConsumer, type Message } from '@confluentinc/kafka-javascript';
import type { Admin } from '@platformatic/kafka';
import { fromCallback } from '../async.ts';
import type { ClientContext } from '../context.ts';
import { createDeadLetters } from '../dead-letter.ts';
import { LakestreamError, errorMessage, isRetriable } from '../errors.ts';
import { createAdmin, librdkafkaBase } from '../kafka.ts';
import { connectOrExplain, notAuthorized } from '../kafka-producer.ts';
import { metrics, secondsSince } from '../metrics.ts';
import { consumerFetchSettings, profileSettings } from '../profile.ts';
import { retry } from '../retry.ts';
import { createCommitStrategy } from './commit.ts';
import { createFetchDecoder } from './decode.ts';
import { exportLag } from './lag.ts';
import { PositionTracker } from './positions.ts';
import { createRebalanceQueue } from './rebalance.ts';
import type { StreamHandler, StreamJob, StreamJobControls, StreamJobOptions, TopicOffset } from './types.ts';

/** Methods of the binding's consumer that its type declarations leave out. */
type Consumer = KafkaConsumer & {
  commitCb(offsets: TopicOffset[], cb: (err: unknown) => void): void;
  setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void;
};

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
export function createStreamJob(options: StreamJobOptions, context: ClientContext, createHandler: (controls: StreamJobControls) => StreamHandler): StreamJob {
  const { config, catalog } = context;
  const profile = profileSettings(config.LAKESTREAM_PROFILE);
  const log = context.log.child({ job: options.name, topic: options.topic });
  const deadLetters = createDeadLetters(options.name, log);
  const maxBatchSize = options.maxBatchSize ?? profile.maxBatchSize;
  const tickMs = options.tickMs ?? 1_000;
  const stats = { recordsIn: 0, batches: 0, batchMs: 0 };
  const assigned = new Set<number>();
  const positions = new PositionTracker(options.topic);
  const job = { job: options.name };
  let consumer: Consumer | undefined;
  let handler: StreamHandler | undefined;
  let metadataAdmin: Admin | undefined;
  let running = false;
  let leaving = false;
  let loopDone: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  /** Where the batch under way stands, for the log of one that takes unusually long. */
  let phase = 'idle';
  let fail: (error: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});

  /**
   * How a batch waits out an outage: a retriable failure (a server unreachable, a timeout) is
   * retried with back-off up to 15 s, logged each time, until JOB_OUTAGE_TIMEOUT_S has passed;
   * meanwhile nothing is consumed, so memory stays at what was fetched. Other errors fail at once.
   */
  function outageRetry(what: string) {
    const since = Date.now();
    return {
      retries: Number.POSITIVE_INFINITY,
      timeoutMs: config.JOB_OUTAGE_TIMEOUT_S * 1000,
      initialDelayMs: 200,
      maxDelayMs: 15_000,
      onRetry: (error: unknown, attempt: number, delayMs: number) => {
        metrics.errors.inc({ ...job, kind: what.replaceAll(' ', '_') });
        log.warn(`${what} failed; retrying`, { attempt, delayMs, waitedMs: Date.now() - since, error: errorMessage(error) });
      },
    };
  }

  /**
   * Offsets are committed after the output is durable and idempotent, so a failed commit (a
   * rebalance under way, a coordinator moving) only means some records are read again and
   * skipped or rewritten as no-ops: it is logged, never a reason to fail the job.
   */
  const commitOffsets = (offsets: TopicOffset[]) =>
    fromCallback((cb) => consumer!.commitCb(offsets, (err) => cb(err))).catch((error: unknown) => {
      metrics.errors.inc({ ...job, kind: 'offset_commit' });
      log.warn('offset commit failed; the records will be read again and skipped', { offsets: offsets.map((o) => `${o.partition}@${o.offset}`).join(','), error: errorMessage(error) });
    });

  const seek = async (partition: number, offset: number) => {
    await fromCallback((cb) => consumer!.seek({ topic: options.topic, partition, offset }, 5_000, cb));
    // a seek back is ours, not a topic reset
    positions.seeked(partition, offset);
  };

  const controls: StreamJobControls = {
    log,
    jobName: options.name,
    commit: (partition, nextOffset) => commitOffsets([{ topic: options.topic, partition, offset: nextOffset }]),
    async seek(partition, offset) {
      if (assigned.has(partition)) await seek(partition, offset);
    },
    logEnd: (partition) =>
      retry(() => fromCallback<{ highOffset: number }>((cb) => consumer!.queryWatermarkOffsets(options.topic, partition, 10_000, cb)).then((w) => w.highOffset), outageRetry('log end query')),
    topicId: () =>
      retry(async () => {
        metadataAdmin ??= createAdmin(config, `${options.name}-metadata`);
        const metadata = await metadataAdmin.metadata({ topics: [options.topic], forceUpdate: true });
        const topic = metadata.topics.get(options.topic);
        if (!topic) throw new LakestreamError('KAFKA_ERROR', `topic ${options.topic} does not exist`, { retriable: true, context: { topic: options.topic } });
        return topic.id;
      }, outageRetry('topic id query')),
  };

  const strategy = createCommitStrategy({
    mode: options.commit,
    jobName: options.name,
    transactionalId: options.transactionalId,
    deadLetterTopic: catalog.deadLetterTopic(options.topic),
    config,
    lingerMs: profile.lingerMs,
    log,
    handler: () => handler!,
    consumer: () => consumer!,
    commitOffsets,
    onPhase: (now) => (phase = now),
  });

  const rebalances = createRebalanceQueue({
    jobName: options.name,
    log,
    positions,
    assigned,
    handler: () => handler!,
    leaving: () => leaving,
    // restoring state right after an outage may time out while the cluster settles; a restore
    // replaces the partitions' state, so it can simply run again (any of librdkafka's errors:
    // a restore only reads, and the next attempt uses a new client)
    restore: (partitions) =>
      retry(async () => handler!.assigned?.(partitions), {
        ...outageRetry('restore'),
        shouldRetry: (error) => !notAuthorized(error, config, '') && (isRetriable(error) || typeof (error as { code?: unknown } | null)?.code === 'number'),
      }),
  });

  let decodeFetch: ReturnType<typeof createFetchDecoder> | undefined;

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
        await seek(partition, offset);
      } catch (error) {
        // a partition no longer assigned refuses the seek: its next owner starts from the committed
        // offset. One still ours would carry on past the dropped records: stop rather than lose them.
        if (assigned.has(partition)) {
          throw new LakestreamError('KAFKA_ERROR', `could not rewind ${options.topic} partition ${partition} to offset ${offset} after dropping a batch: ${errorMessage(error)}`, { cause: error });
        }
      }
    }
  }

  async function processFetch(messages: Message[]): Promise<void> {
    const startedAt = performance.now();
    phase = 'decoding';
    const watchdog = setInterval(() => log.warn('batch still under way', { phase, seconds: Math.round((performance.now() - startedAt) / 1000), records: messages.length }), 60_000);
    try {
      const retrying = outageRetry('batch');
      positions.check(messages);
      const fetch = await retry(() => decodeFetch!(messages), retrying);
      if ((await strategy.process(fetch, retrying)) === 'dropped') {
        await rewind(messages);
        return;
      }
      stats.recordsIn += messages.length;
      stats.batches++;
      stats.batchMs += performance.now() - startedAt;
      metrics.recordsIn.inc({ ...job, topic: options.topic }, messages.length);
      metrics.batchDuration.observe(job, secondsSince(startedAt));
    } finally {
      clearInterval(watchdog);
      phase = 'idle';
    }
  }

  async function loop(): Promise<void> {
    let lastTick = Date.now();
    let firstSeen = false;
    while (running) {
      const messages = await fromCallback<Message[]>((cb) => consumer!.consume(maxBatchSize, cb)).catch((error: unknown) => {
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
        if (!rebalances.revokePending()) await rebalances.apply(consumer!);
        await processFetch(messages);
      }
      await rebalances.apply(consumer!);
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
      await strategy.start();
      handler = createHandler(controls);
      decodeFetch = createFetchDecoder({ decode: context.decode, rules: catalog.topicByName(options.topic)?.rules, accept: handler.accept?.bind(handler), deadLetters });
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
          await rebalances.apply(consumer!).catch(() => {});
          try {
            await handler.close?.();
          } catch (error) {
            closeError = error;
          }
        }
        leaving = true;
        if (consumer) await fromCallback((cb) => consumer!.disconnect((err) => cb(err))).catch(() => {});
        await strategy.close();
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
      ...strategy.stats(stats.batches),
      deadLetters: deadLetters.counts(),
      assigned: [...assigned].sort((a, b) => a - b),
      ...handler?.stats?.(),
    }),
  };
}
