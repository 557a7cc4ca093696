import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { Type } from 'avsc';
import { LakestreamError, errorMessage } from './errors.ts';
import { registryUnreachable } from './registry.ts';

/** Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body. */
export const MAGIC_BYTE = 0;

export interface AvroCodec {
  schemaId: number;
  type: Type;
  encode(record: unknown): Buffer;
  /**
   * The same bytes as `encode`, in a buffer this codec reuses: valid until its next call. For
   * handing straight to librdkafka's produce(), which copies the payload before it returns;
   * saves two allocations per record on the hot paths.
   */
  encodeTransient(record: unknown): Buffer;
}

/**
 * An encoder bound to one registered schema. It frames avsc's output itself instead of calling
 * the registry client per record: same bytes, without an async lookup per message.
 */
export async function avroCodec(registry: SchemaRegistry, schemaId: number): Promise<AvroCodec> {
  const type = (await registry.getSchema(schemaId)) as unknown as Type;
  const header = Buffer.alloc(5);
  header.writeUInt8(MAGIC_BYTE, 0);
  header.writeUInt32BE(schemaId, 1);
  let scratch = Buffer.alloc(16 * 1024);
  header.copy(scratch);
  return {
    schemaId,
    type,
    encode: (record) => Buffer.concat([header, type.toBuffer(record)]),
    encodeTransient(record) {
      let end = type.encode(record, scratch, 5);
      while (end < 0) {
        // avsc reports a short buffer as a negative number: grow and encode again
        scratch = Buffer.alloc(scratch.length * 4);
        header.copy(scratch);
        end = type.encode(record, scratch, 5);
      }
      return scratch.subarray(0, end);
    },
  };
}

/** An Avro type as a reader of an error message knows it: `long`, `string|null`, a record's name. */
export function avroTypeName(type: Type): string {
  const union = (type as unknown as { types?: Type[] }).types;
  return union ? union.map(avroTypeName).join('|') : ((type as unknown as { name?: string }).name ?? type.typeName.replace(/^abstract:/, ''));
}

/** Every field of `record` that `type` cannot encode, with what it must be (empty when it can). */
export function schemaViolations(type: Type, record: unknown): Array<{ field: string; message: string }> {
  const violations: Array<{ field: string; message: string }> = [];
  type.isValid(record, {
    errorHook: (path: string[], value: unknown, fieldType: Type) => {
      const field = path.join('.') || '(record)';
      if (violations.some((violation) => violation.field === field)) return;
      violations.push({ field, message: value === undefined ? `is required (${avroTypeName(fieldType)})` : `must be ${avroTypeName(fieldType)}, got ${JSON.stringify(value)}` });
    },
  });
  return violations;
}

export interface DecodedRecord {
  schemaId: number;
  value: Record<string, unknown>;
  type: Type;
}

/**
 * Decodes Confluent-framed Avro with a per-id cache of writer schemas. Throws RECORD_UNDECODABLE
 * with the reason (wrong magic byte, unknown schema id, truncated or trailing bytes).
 */
export type AvroDecoder = (bytes: Buffer | null | undefined) => DecodedRecord | Promise<DecodedRecord>;

/**
 * Decodes Confluent-framed Avro with a per-id cache of writer schemas. Throws RECORD_UNDECODABLE
 * with the reason (wrong magic byte, unknown schema id, truncated or trailing bytes). Once a
 * schema id is known the result is returned synchronously: hot loops skip a promise per record
 * (`const d = decode(b); const record = d instanceof Promise ? await d : d`).
 */
export function createAvroDecoder(registry: SchemaRegistry): AvroDecoder {
  const known = new Map<number, Type>();
  const loading = new Map<number, Promise<Type>>();

  const decodeWith = (type: Type, schemaId: number, bytes: Buffer): DecodedRecord => {
    try {
      const { value, offset } = type.decode(bytes, 5);
      if (offset !== bytes.length) throw new Error(offset < 0 ? 'truncated Avro body' : `${bytes.length - offset} trailing bytes`);
      // avsc returns instances of a generated record class; callers want plain data
      return { schemaId, value: { ...(value as Record<string, unknown>) }, type };
    } catch (cause) {
      throw new LakestreamError('RECORD_UNDECODABLE', `Avro body does not match schema ${schemaId}: ${(cause as Error).message}`, {
        cause,
        context: { reason: 'corrupt-body', schemaId },
      });
    }
  };

  const load = async (schemaId: number, bytes: Buffer): Promise<DecodedRecord> => {
    let pending = loading.get(schemaId);
    if (!pending) {
      pending = registry.getSchema(schemaId).then((schema) => schema as unknown as Type);
      loading.set(schemaId, pending);
    }
    let type: Type;
    try {
      type = await pending;
      known.set(schemaId, type);
    } catch (cause) {
      loading.delete(schemaId);
      const status = (cause as { status?: number }).status;
      const unreachable = registryUnreachable(cause);
      throw new LakestreamError('RECORD_UNDECODABLE', unreachable ? `schema id ${schemaId}: the registry is unreachable: ${errorMessage(cause)}` : `unknown schema id ${schemaId}${status ? ` (registry answered ${status})` : ''}`, {
        cause,
        // no answer is no verdict on the record: retry it rather than dead-letter it
        retriable: unreachable,
        context: { reason: 'unknown-schema', schemaId },
      });
    }
    return decodeWith(type, schemaId, bytes);
  };

  return (bytes) => {
    if (!bytes || bytes.length < 6) {
      throw new LakestreamError('RECORD_UNDECODABLE', `record too short for Confluent Avro (${bytes?.length ?? 0} bytes)`, { context: { reason: 'truncated' } });
    }
    if (bytes[0] !== MAGIC_BYTE) {
      throw new LakestreamError('RECORD_UNDECODABLE', `wrong magic byte ${bytes[0]} (expected 0)`, { context: { reason: 'magic-byte' } });
    }
    const schemaId = bytes.readUInt32BE(1);
    const type = known.get(schemaId);
    return type ? decodeWith(type, schemaId, bytes) : load(schemaId, bytes);
  };
}
