import { recordValidator, rule } from './rules.ts';

/** A money movement of one user, as `transactions-value.avsc` describes it. */
export interface Transaction {
  /** The user who moved money. */
  user_id: number;
  /** Event time, ms since the epoch (UTC). */
  transaction_timestamp_millis: number;
  /** Negative for a debit, positive for a credit. */
  amount: number;
  /** ISO 4217 currency code. */
  currency: string;
  /** The other party of the transaction. */
  counterpart_id: number;
}

/** The business rules of a transaction: returns the record, or throws RECORD_INVALID naming the field and the record. */
export const validateTransaction = recordValidator<Transaction>('transaction', {
  user_id: rule.int32(0),
  transaction_timestamp_millis: rule.epochMillis(),
  amount: rule.finite(),
  currency: rule.matches(/^[A-Z]{3}$/, 'must be three upper-case letters (ISO 4217)'),
  counterpart_id: rule.int32(0),
});
