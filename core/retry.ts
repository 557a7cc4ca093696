import { isRetriable } from './errors.ts';

export interface RetryOptions {
  /** Attempts after the first one. */
  retries?: number;
  /** Give up once this long has passed since the first attempt (0 or absent: only `retries` limits). */
  timeoutMs?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Decides whether an error is worth another attempt; defaults to the error's own `retriable` flag. */
  shouldRetry?: (error: unknown) => boolean;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

export interface RetryControl {
  /** Stops retrying and rethrows `error` at once. */
  bail(error: unknown): never;
  attempt: number;
}

class Bail {
  constructor(readonly error: unknown) {}
}

/**
 * Runs `task` until it succeeds, with full-jitter exponential backoff. The one place where the
 * project waits out transient failures of Kafka, S3, Redis or the registry.
 */
export async function retry<T>(task: (control: RetryControl) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const retries = options.retries ?? 5;
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5_000;
  const shouldRetry = options.shouldRetry ?? isRetriable;
  const deadline = options.timeoutMs ? Date.now() + options.timeoutMs : Number.POSITIVE_INFINITY;
  for (let attempt = 0; ; attempt++) {
    try {
      return await task({
        attempt,
        bail(error: unknown): never {
          throw new Bail(error);
        },
      });
    } catch (error) {
      if (error instanceof Bail) throw error.error;
      if (attempt >= retries || !shouldRetry(error) || Date.now() >= deadline) throw error;
      const delayMs = Math.min(Math.round(Math.random() * Math.min(max, initial * 2 ** attempt)), Math.max(0, deadline - Date.now()));
      options.onRetry?.(error, attempt + 1, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
