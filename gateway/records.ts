import type { Type } from 'avsc';
import { LakestreamError } from '../core/errors.ts';
import { schemaViolations } from '../core/avro.ts';

export interface FieldError {
  field: string;
  message: string;
}

interface AvroField {
  name: string;
  type: Type;
  defaultValue(): unknown;
}

/** The Avro type name of a field, unions written as `null|string`. */
/** Plain or exact (core/avro-long.ts, an avsc abstract long) 64-bit integers. */
const isLong = (type: Type): boolean => /^(abstract:)?long$/.test(type.typeName) || Boolean((type as unknown as { types?: Type[] }).types?.some(isLong));

/**
 * A JSON record checked against the topic's registered Avro schema, then against the topic's
 * business rules: every offending field with what it must be, not only the first. JSON has no
 * 64-bit integers, so a `long` may come as a string of digits (a 19-digit id); it is read exactly.
 * Returns the record ready to encode, or the field errors.
 */
export function checkRecord(type: Type, rules: ((record: Record<string, unknown>) => void) | undefined, input: unknown): { record: Record<string, unknown> } | { errors: FieldError[] } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { errors: [{ field: '(record)', message: 'must be a JSON object' }] };
  const fields = (type as unknown as { fields: AvroField[] }).fields;
  const record: Record<string, unknown> = { ...(input as Record<string, unknown>) };
  const errors: FieldError[] = [];
  for (const key of Object.keys(record)) {
    if (!fields.some((field) => field.name === key)) errors.push({ field: key, message: `is not a field of ${(type as unknown as { name: string }).name}` });
  }
  for (const field of fields) {
    const value = record[field.name];
    if (typeof value === 'string' && isLong(field.type) && /^-?\d{1,19}$/.test(value)) {
      const exact = BigInt(value);
      record[field.name] = exact >= BigInt(Number.MIN_SAFE_INTEGER) && exact <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(exact) : exact;
    }
    if (record[field.name] === undefined && field.defaultValue() !== undefined) record[field.name] = field.defaultValue();
  }
  for (const violation of schemaViolations(type, record)) {
    if (!errors.some((error) => error.field === violation.field)) errors.push(violation);
  }
  if (errors.length) return { errors };
  try {
    rules?.(record);
  } catch (error) {
    if (!(error instanceof LakestreamError) || error.code !== 'RECORD_INVALID') throw error;
    const field = String(error.context.field ?? '(record)');
    const message = String(error.context.rule ?? error.message);
    return { errors: [{ field, message }] };
  }
  return { record };
}
