import { z } from 'zod';
import { LakestreamError } from '../core/errors.ts';

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const int32 = z.number().int().min(INT32_MIN).max(INT32_MAX);

/**
 * The business rules of a transaction, checked before encoding and again after decoding. Fields
 * added by later schema versions pass through untouched (the registry, not this check, decides
 * what a version may contain).
 */
export const transactionSchema = z
  .looseObject({
    user_id: int32.nonnegative().describe('The user who moved money.'),
    transaction_timestamp_millis: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).describe('Event time, ms since the epoch (UTC).'),
    amount: z.number().finite().describe('Negative for a debit, positive for a credit.'),
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be three upper-case letters (ISO 4217)').describe('ISO 4217 currency code.'),
    counterpart_id: int32.nonnegative().describe('The other party of the transaction.'),
  });

export type Transaction = z.infer<typeof transactionSchema>;

/** Returns the record, or throws RECORD_INVALID naming the first offending field and the record. */
export function validateTransaction(input: unknown): Transaction {
  const parsed = transactionSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.join('.') || '(record)';
  const shown = JSON.stringify(input, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  throw new LakestreamError('RECORD_INVALID', `invalid transaction: ${field}: ${issue.message} in ${shown}`, {
    context: { reason: 'invalid', field, record: shown?.slice(0, 500) },
  });
}
