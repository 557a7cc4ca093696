import kafkaJavascript from '@confluentinc/kafka-javascript';
import { LakestreamError, errorMessage } from '../errors.ts';
import type { TransactionalProducer } from '../kafka-producer.ts';
import type { Logger } from '../log.ts';

/**
 * The transactional producer of a `transaction`-mode job as an explicit state machine (after
 * KafkaJS's eosManager):
 *
 *   ready ──begin──▶ in-transaction ──commit──▶ ready
 *                       ├─ commit failed, outcome unknown ──▶ broken (settle() replaces it)
 *                       │ other failure: abort
 *                       ├─ abort done ─────────▶ ready
 *                       ├─ abort failed ───────▶ abort-pending (aborted before the next begin)
 *                       └─ fatal or fenced ────▶ broken (replaced before the next begin)
 *
 * A failed commit that librdkafka does not call abortable has an unknown outcome: the producer is
 * broken and the caller gets TransactionOutcomeUnknown (see there), never a retry from memory.
 * Any other failed transaction is aborted and the batch retried, unless librdkafka calls the error fatal
 * (fenced by a newer instance, or the producer unusable): a lost coordinator or a broker
 * transport failure only means the transaction did not happen. A fatal error leaves the producer
 * unusable: a new one with the same transactional id aborts whatever was open. That includes a
 * fence: the coordinator also bumps the producer's epoch when it times out a transaction that an
 * outage held open longer than transaction.timeout.ms. A zombie cannot commit through a new
 * producer either, because offsets go into the transaction with the consumer's group generation
 * (KIP-447), which the broker checks. Fenced `fenceLimit` times within `fenceWindowMs` means
 * another live process shares our transactional id (two instances with one `--instance`): that
 * error is not retriable, and fails the job.
 */
/**
 * A commit that failed: it may have been logged by the coordinator, and the producer that sent it
 * is replaced so that its successor's initTransactions settles it one way or the other. The batch
 * must not be applied again from memory: the caller drops it, restores state from the changelog
 * and reads on from the committed offsets, which then say which way it went.
 */
export class TransactionOutcomeUnknown extends LakestreamError {
  constructor(cause: unknown) {
    super('KAFKA_ERROR', `the outcome of a transaction commit is unknown: ${errorMessage(cause)}`, { cause, retriable: false });
  }
}

export type TransactionState = 'idle' | 'ready' | 'in-transaction' | 'abort-pending' | 'broken' | 'closed';

export interface TransactionManagerOptions {
  transactionalId: string;
  newProducer: () => Promise<TransactionalProducer>;
  log: Logger;
  /** Told where a transaction stands, for the log of a batch that takes unusually long. */
  onPhase?: (phase: string) => void;
  fenceLimit?: number;
  fenceWindowMs?: number;
  /** Times a retriable commit failure is resumed by committing again before its outcome counts as unknown. */
  commitRetries?: number;
  now?: () => number;
}

export interface TransactionRun {
  /** Adds the batch's output, dead letters and offsets to the open transaction. */
  work(producer: TransactionalProducer): Promise<void>;
  /** The transaction was aborted: the handler drops state that may be ahead of what committed. */
  aborted?(): void;
  /** An error this caller knows better (refused by ACLs, out of the group), thrown as is. */
  explain?(error: unknown): Error | undefined;
}

export interface TransactionManager {
  readonly state: TransactionState;
  start(): Promise<void>;
  /**
   * One transaction; resolves with its commit's duration in ms. Failures come classified
   * (retriable or not); a failed commit as TransactionOutcomeUnknown, after `run.aborted`.
   */
  run(run: TransactionRun): Promise<number>;
  /** Replaces the producer if it is broken: after TransactionOutcomeUnknown, this settles the commit. */
  settle(): Promise<void>;
  close(): Promise<void>;
  /**
   * Commits resumed after a retriable failure, commits given up with their outcome unknown,
   * transactions aborted, producers replaced, and transactional calls that never called back
   * (given up by the producer's guard).
   */
  stats(): { commitsResumed: number; commitsUnknown: number; transactionsAborted: number; producersReplaced: number; callsStuck: number };
}

const FENCED_CODES: number[] = [kafkaJavascript.CODES.ERRORS.ERR__FENCED, kafkaJavascript.CODES.ERRORS.ERR_PRODUCER_FENCED, kafkaJavascript.CODES.ERRORS.ERR_INVALID_PRODUCER_EPOCH];

export function createTransactionManager(options: TransactionManagerOptions): TransactionManager {
  const { transactionalId, log } = options;
  const fenceLimit = options.fenceLimit ?? 3;
  const commitRetries = options.commitRetries ?? 5;
  const fenceWindowMs = options.fenceWindowMs ?? 5 * 60_000;
  const now = options.now ?? Date.now;
  const phase = options.onPhase ?? (() => {});
  const fences: number[] = [];
  let producer: TransactionalProducer | undefined;
  let state: TransactionState = 'idle';
  const counters = { commitsResumed: 0, commitsUnknown: 0, transactionsAborted: 0, producersReplaced: 0, callsStuck: 0 };

  /** librdkafka's errors, classified; a handler's bug (no numeric code) stays what it is. */
  const classify = (error: unknown): unknown => {
    const kafkaError = error as { code?: unknown; isFatal?: boolean; stuck?: string } | null;
    if (!kafkaError || typeof kafkaError.code !== 'number') return error;
    if (kafkaError.stuck) counters.callsStuck++;
    if (FENCED_CODES.includes(kafkaError.code)) {
      fences.push(now());
      while (fences[0]! < now() - fenceWindowMs) fences.shift();
      if (fences.length >= fenceLimit) {
        return new LakestreamError('KAFKA_ERROR', `fenced ${fences.length} times in ${Math.round(fenceWindowMs / 60_000)} minutes: another process runs with transactional id ${transactionalId} (${errorMessage(error)})`, { cause: error });
      }
      state = 'broken';
    } else if (kafkaError.isFatal) {
      state = 'broken';
    }
    return new LakestreamError('KAFKA_ERROR', `transaction aborted: ${errorMessage(error)}`, { cause: error, retriable: true });
  };

  /** Brings the producer to `ready`: replaced if broken, the pending abort done. */
  async function ready(): Promise<TransactionalProducer> {
    if (state === 'closed' || state === 'idle') throw new LakestreamError('USAGE', `transactional producer ${transactionalId} is ${state}`);
    if (state === 'broken') {
      await producer!.close().catch(() => {});
      log.warn('transactional producer unusable after a fatal error; starting a new one', { transactionalId });
      producer = await options.newProducer().catch((error: unknown) => {
        throw new LakestreamError('KAFKA_ERROR', `could not start a new transactional producer: ${errorMessage(error)}`, { cause: error, retriable: true });
      });
      counters.producersReplaced++;
      state = 'ready';
    }
    if (state === 'abort-pending') {
      await producer!.abort().catch((error: unknown) => {
        throw classify(error);
      });
      state = 'ready';
    }
    return producer!;
  }

  /**
   * A commit librdkafka calls retriable (a timeout, the coordinator moving) is still under way in
   * the producer: aborting it is refused, but calling commit again resumes it, as librdkafka
   * documents. Past `commitRetries` its outcome is unknown.
   */
  async function commitResuming(current: TransactionalProducer): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await current.commit();
      } catch (error) {
        const kafkaError = error as { isRetriable?: boolean; isFatal?: boolean; isTxnRequiresAbort?: boolean } | null;
        if (!kafkaError?.isRetriable || kafkaError.isFatal || kafkaError.isTxnRequiresAbort || attempt > commitRetries) throw error;
        log.warn('commit failed retriably; resuming it', { transactionalId, attempt, error: errorMessage(error) });
        counters.commitsResumed++;
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2_000)));
      }
    }
  }

  return {
    get state() {
      return state;
    },
    async start() {
      // initialising the transactional id aborts a predecessor's open transaction
      producer = await options.newProducer();
      state = 'ready';
    },
    async run(run) {
      phase('starting the transaction');
      const current = await ready();
      await current.begin().catch((error: unknown) => {
        throw classify(error);
      });
      state = 'in-transaction';
      let committing = false;
      try {
        phase('handling the batch');
        await run.work(current);
        phase('committing');
        committing = true;
        const started = performance.now();
        await commitResuming(current);
        state = 'ready';
        return performance.now() - started;
      } catch (error) {
        // A commit that failed without librdkafka saying it must be aborted may have been logged
        // by the coordinator: aborting would not tell. Only a successor producer with the same
        // transactional id settles it.
        if (committing && !(error as { isTxnRequiresAbort?: boolean } | null)?.isTxnRequiresAbort) {
          // counted like any fence (another process with our id must still fail the job)
          const counted = classify(error);
          if (counted instanceof LakestreamError && !counted.retriable) throw counted;
          state = 'broken';
          counters.commitsUnknown++;
          run.aborted?.();
          throw new TransactionOutcomeUnknown(error);
        }
        phase('aborting');
        counters.transactionsAborted++;
        state = 'ready';
        await current.abort().catch((cause: unknown) => {
          state = 'abort-pending';
          log.warn('abort failed; retrying it before the next transaction', { error: errorMessage(cause) });
        });
        run.aborted?.();
        const explained = run.explain?.(error);
        if (explained) throw explained;
        // a fatal error replaces the producer whatever the abort did
        throw classify(error);
      }
    },
    async settle() {
      await ready();
    },
    async close() {
      state = 'closed';
      await producer?.close();
    },
    stats: () => ({ ...counters }),
  };
}
