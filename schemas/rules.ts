import { LakestreamError } from '../core/errors.ts';

/**
 * Business rules of a record, one per field, checked by producers before encoding and by every
 * reader after decoding. A rule is a predicate and the message that explains it; a validator made
 * of them costs a few property reads per record (a zod parse of the same rules cost ~1 µs per
 * record, the largest share of a job's per-record work: docs/decisions/0006-benchmarks.md).
 * Fields the rules do not name pass through untouched: the registry, not these rules, decides
 * what a schema version may contain.
 */
export interface FieldRule {
  check(value: unknown): boolean;
  message: string;
}

export const rule = {
  int32: (min = -(2 ** 31)): FieldRule => ({
    check: (v) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= 2 ** 31 - 1,
    message: min === 0 ? 'must be a non-negative 32-bit integer' : 'must be a 32-bit integer',
  }),
  epochMillis: (): FieldRule => ({
    check: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER,
    message: 'must be milliseconds since the epoch (a non-negative integer)',
  }),
  finite: (): FieldRule => ({ check: (v) => typeof v === 'number' && Number.isFinite(v), message: 'must be a finite number' }),
  nonNegative: (): FieldRule => ({ check: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0, message: 'must be a number >= 0' }),
  /** An Avro long identifier: a safe integer, or a bigint beyond 2^53 (never a rounded number). */
  id: (): FieldRule => ({
    check: (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n && v < 2n ** 63n),
    message: 'must be a non-negative 64-bit integer (a bigint beyond 2^53)',
  }),
  oneOf: (values: readonly string[]): FieldRule => ({ check: (v) => typeof v === 'string' && values.includes(v), message: `must be one of ${values.join(', ')}` }),
  text: (): FieldRule => ({ check: (v) => typeof v === 'string' && v.length > 0, message: 'must be a non-empty string' }),
  optionalText: (): FieldRule => ({ check: (v) => v === null || v === undefined || (typeof v === 'string' && v.length > 0), message: 'must be absent (null) or a non-empty string' }),
  matches: (pattern: RegExp, message: string): FieldRule => ({ check: (v) => typeof v === 'string' && pattern.test(v), message }),
};

/** A validator returning the record itself (typed), or throwing RECORD_INVALID naming the first offending field and the record. */
export function recordValidator<T>(recordName: string, rules: Record<keyof T & string, FieldRule>): (input: unknown) => T {
  const entries = Object.entries(rules) as Array<[string, FieldRule]>;
  return (input) => {
    let field: string | undefined;
    let message = 'must be an object';
    if (typeof input !== 'object' || input === null) field = '(record)';
    else {
      for (const [name, fieldRule] of entries) {
        if (!fieldRule.check((input as Record<string, unknown>)[name])) {
          field = name;
          message = fieldRule.message;
          break;
        }
      }
    }
    if (field === undefined) return input as T;
    const shown = JSON.stringify(input, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
    throw new LakestreamError('RECORD_INVALID', `invalid ${recordName}: ${field}: ${message} in ${shown}`, {
      context: { reason: 'invalid', field, rule: message, record: shown?.slice(0, 500) },
    });
  };
}
