import type { Transaction } from '../../schemas/transactions.ts';

export interface GeneratorOptions {
  /** Number of distinct users. */
  users: number;
  /** Same seed, same sequence of records. */
  seed: number;
  /** Event times are spread uniformly over this many past days (0 = close to now). */
  spreadDays: number;
  /**
   * With `spreadDays`: the records the history spans. Event times then run from the start of the
   * history to now in sending order, each up to `disorderMs` behind (what a replay of history
   * looks like, and what windowed features accept). Without it they are in random order.
   */
  records?: number;
  /** Most a record's event time lags the history's front (default 2 min, within the windows' allowed lateness). */
  disorderMs?: number;
  /** "Now" for event times; fixed by tests to make output fully reproducible. */
  now?: number;
}

/** mulberry32: tiny, fast, good enough for fake data, and reproducible across platforms. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CURRENCIES: Array<[string, number]> = [
  ['EUR', 0.42],
  ['USD', 0.3],
  ['GBP', 0.1],
  ['CHF', 0.06],
  ['PLN', 0.05],
  ['SEK', 0.04],
  ['JPY', 0.03],
];

/**
 * Realistic-looking transactions: users follow a Zipf-like law (a few heavy users, a long tail),
 * 80% are debits with log-normal amounts (median ~25), credits are rarer and larger (salaries,
 * refunds), counterparts are drawn from a pool of merchants shared by everyone.
 */
export function createTransactionGenerator(options: GeneratorOptions): () => Transaction {
  const random = seededRandom(options.seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  // Inverse-CDF sampling of a continuous power law over [1, users]: P(rank) ~ rank^-1.1.
  const exponent = 1 - 1.1;
  const top = options.users ** exponent;
  const userRank = () => Math.min(options.users, Math.floor((1 + random() * (top - 1)) ** (1 / exponent)));
  const merchants = Math.max(10, Math.floor(options.users / 5));
  const now = options.now ?? Date.now();
  const spreadMs = options.spreadDays * 24 * 3600 * 1000;
  const inOrder = spreadMs > 0 && options.records !== undefined && options.records > 0;
  const disorderMs = options.disorderMs ?? 2 * 60 * 1000;
  let index = 0;
  const eventTime = () => {
    if (!spreadMs) return Math.floor(now - random() * 1000);
    if (!inOrder) return Math.floor(now - random() * spreadMs);
    const front = now - spreadMs + (Math.min(index++, options.records! - 1) / Math.max(1, options.records! - 1)) * spreadMs;
    return Math.floor(Math.max(now - spreadMs, front - random() * disorderMs));
  };

  return () => {
    const debit = random() < 0.8;
    const magnitude = debit ? Math.exp(3.2 + 1.1 * gaussian()) : Math.exp(5.5 + 1.0 * gaussian());
    let pick = random();
    let currency = CURRENCIES[0]![0];
    for (const [code, weight] of CURRENCIES) {
      if ((pick -= weight) <= 0) {
        currency = code;
        break;
      }
    }
    return {
      user_id: userRank(),
      transaction_timestamp_millis: eventTime(),
      amount: Math.round((debit ? -magnitude : magnitude) * 100) / 100,
      currency,
      counterpart_id: 1_000_000 + Math.floor(random() * merchants),
    };
  };
}
