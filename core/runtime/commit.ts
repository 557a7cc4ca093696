import type { KafkaConsumer } from '@confluentinc/kafka-javascript';
import type { Config } from '../config.ts';
import type { DeadLetters } from '../dead-letter.ts';
import { LakestreamError, errorMessage, isRetriable } from '../errors.ts';
import { createBatchProducer, createTransactionalProducer, type BatchProducer } from '../kafka-producer.ts';
import { notAuthorized } from '../kafka-probe.ts';
import type { Logger } from '../log.ts';
import { metrics } from '../metrics.ts';
import { retry, type RetryOptions } from '../retry.ts';
import type { DecodedFetch } from './decode.ts';
import { GroupMembershipLost, lostGroupMembership } from './membership.ts';
import { createTransactionManager, TransactionOutcomeUnknown, type TransactionManager } from './transactions.ts';
import type { CommitMode, StreamHandler, TopicOffset } from './types.ts';

/**
 * How a handled fetch becomes durable: one strategy per commit mode (see CommitMode), each with
 * its own producer for dead letters. `process` resolves 'dropped' when the fetch was refused and
 * must be read again: the caller rewinds its partitions.
 */
/**
 * What became of a fetch: `done`; `dropped`, to be read again from its own first offsets; or
 * `unsettled`, a commit whose outcome was unknown until the producer was replaced, to be read
 * again from the committed offsets (past the batch if its commit went through).
 */
export type FetchOutcome = 'done' | 'dropped' | 'unsettled';

export interface CommitStrategy {
  start(): Promise<void>;
  process(fetch: DecodedFetch, retrying: RetryOptions): Promise<FetchOutcome>;
  close(): Promise<void>;
  /** Mean transaction commit time, for `transaction` mode's stats. */
  stats(batches: number): Record<string, number>;
}

export interface CommitStrategyDeps {
  mode: CommitMode;
  jobName: string;
  transactionalId?: string;
  deadLetterTopic: string;
  deadLetters: DeadLetters;
  config: Config;
  lingerMs: number;
  log: Logger;
  handler: () => StreamHandler;
  consumer: () => KafkaConsumer;
  /** Commits consumer offsets; a failure is logged (the records are read again), never thrown. */
  commitOffsets: (offsets: TopicOffset[]) => Promise<void>;
  onPhase: (phase: string) => void;
}

const nextOffsets = (fetch: DecodedFetch): TopicOffset[] => fetch.batches.map((b) => ({ topic: b.topic, partition: b.partition, offset: b.lastOffset + 1 }));

export function createCommitStrategy(deps: CommitStrategyDeps): CommitStrategy {
  return deps.mode === 'transaction' ? transactionStrategy(deps) : batchStrategy(deps);
}

/**
 * `after-batch` and `handler`: dead letters are acknowledged by Kafka before the handler sees
 * the batch; `after-batch` then commits the batch's offsets, `handler` leaves that to the handler.
 */
function batchStrategy(deps: CommitStrategyDeps): CommitStrategy {
  let dlqProducer: BatchProducer | undefined;
  const noProduce = () => {
    throw new LakestreamError('USAGE', `${deps.jobName}: produce() needs the transaction commit mode`);
  };
  return {
    async start() {
      dlqProducer = await createBatchProducer(deps.config, `${deps.jobName}-dlq`, { lingerMs: deps.lingerMs });
    },
    async process(fetch, retrying) {
      if (fetch.letters.length) {
        await retry(async () => {
          const { failed: undelivered, firstError } = await dlqProducer!.send(deps.deadLetterTopic, fetch.letters);
          if (undelivered) throw new LakestreamError('DELIVERY_FAILED', `${undelivered} dead letters not delivered to ${deps.deadLetterTopic}: ${errorMessage(firstError)}`, { retriable: true });
        }, retrying);
      }
      deps.onPhase('handling the batch');
      await retry(() => deps.handler().handle(fetch.batches, { produce: noProduce, deadLetter: noProduce }), retrying);
      deps.onPhase('committing offsets');
      if (deps.mode === 'after-batch') await deps.commitOffsets(nextOffsets(fetch));
      return 'done';
    },
    async close() {
      await dlqProducer?.close();
    },
    stats: () => ({}),
  };
}

const TRANSACTION_LINGER_MS = 20;

/** `transaction`: the handler's output, the dead letters and the offsets in one Kafka transaction. */
function transactionStrategy(deps: CommitStrategyDeps): CommitStrategy {
  const { config, jobName, log } = deps;
  if (!deps.transactionalId) throw new LakestreamError('USAGE', `${jobName}: the transaction commit mode needs a transactionalId`);
  const transactionalId = deps.transactionalId;
  const job = { job: jobName };
  let commitMs = 0;
  const manager: TransactionManager = createTransactionManager({
    transactionalId,
    // A transaction's records are invisible until its commit, and the commit flushes whatever
    // lingers (librdkafka ignores linger.ms while flushing), so a linger costs no latency here;
    // linger 0 made librdkafka wake its broker threads and send a request per few records, which
    // on a 2-core machine with three brokers cost the latency profile more per record than the
    // throughput profile (docs/decisions/0006).
    newProducer: () => createTransactionalProducer(config, transactionalId, { lingerMs: Math.max(deps.lingerMs, TRANSACTION_LINGER_MS) }),
    log,
    onPhase: deps.onPhase,
  });
  return {
    start: () => manager.start(),
    async process(fetch, retrying) {
      const partitions = fetch.batches.map((b) => b.partition);
      let produced = new Map<string, number>();
      try {
        const ms = await retry(
          () =>
            manager.run({
              work: async (producer) => {
                produced = new Map();
                for (const letter of fetch.letters) await producer.produce(deps.deadLetterTopic, letter);
                await deps.handler().handle(fetch.batches, {
                  produce: (topic, message) => {
                    produced.set(topic, (produced.get(topic) ?? 0) + 1);
                    return producer.produce(topic, message);
                  },
                  deadLetter: (record, error) => producer.produce(deps.deadLetterTopic, deps.deadLetters.letter(record.message, error)),
                });
                deps.onPhase('sending offsets to the transaction');
                await producer.sendOffsets(nextOffsets(fetch), deps.consumer());
              },
              aborted: () => deps.handler().aborted?.(partitions),
              explain: (error) =>
                notAuthorized(error, config, `write ${jobName}'s transaction (transactional id ${transactionalId})`) ?? (lostGroupMembership(error) ? new GroupMembershipLost(error) : undefined),
            }),
          { ...retrying, shouldRetry: (error) => !(error instanceof GroupMembershipLost) && isRetriable(error) },
        );
        commitMs += ms;
        metrics.transactionCommitDuration.observe(job, ms / 1000);
        for (const [topic, count] of produced) metrics.recordsOut.inc({ ...job, output: topic }, count);
        return 'done';
      } catch (error) {
        if (error instanceof TransactionOutcomeUnknown) {
          log.warn('a transaction commit failed with its outcome unknown: the batch is dropped, state restored from the changelog and the partitions read again from the committed offsets', { error: errorMessage(error.cause) });
          await retry(() => manager.settle(), { ...retrying, shouldRetry: isRetriable });
          return 'unsettled';
        }
        if (!(error instanceof GroupMembershipLost)) throw error;
        log.warn('out of the consumer group after waiting out an outage: the batch is dropped, read again after rejoining', { error: errorMessage(error.cause) });
        return 'dropped';
      }
    },
    close: () => manager.close(),
    stats: (batches) => ({ meanCommitMs: batches ? Math.round((commitMs / batches) * 10) / 10 : 0, ...manager.stats() }),
  };
}
