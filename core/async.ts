/**
 * Promise helpers for the callback APIs (librdkafka's binding) and for calls that must not wait
 * for ever on a server that does not answer. One place, so every caller reports a timeout alike.
 */

/** Calls a Node-style callback API and resolves with its value (or rejects with its error). */
export function fromCallback<T = void>(fn: (cb: (err: unknown, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** Rejects with "<label> did not answer within N s" if `what` has not settled by then. */
export function withTimeout<T>(what: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([what, timeout]).finally(() => clearTimeout(timer));
}
