import avro from 'avsc';

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Avro `long` read exactly: a JavaScript number while it fits (|n| ≤ 2^53 − 1, so epoch
 * milliseconds, counts and ids stay plain numbers), a bigint beyond (the shop data set's 19-digit
 * category ids). avsc's default long would silently round the latter; this one writes a bigint
 * or a safe integer and refuses an unsafe number instead of rounding it.
 */
export const exactLong = avro.types.LongType.__with({
  fromBuffer(buffer: Buffer): number | bigint {
    const value = buffer.readBigInt64LE();
    return value <= SAFE && value >= -SAFE ? Number(value) : value;
  },
  toBuffer(value: number | bigint): Buffer {
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64LE(BigInt(value));
    return buffer;
  },
  fromJSON: (json: unknown) => (typeof json === 'string' ? BigInt(json) : (json as number)),
  toJSON: (value: number | bigint) => (typeof value === 'bigint' ? value.toString() : value),
  isValid: (value: unknown) =>
    (typeof value === 'number' && Number.isSafeInteger(value)) || (typeof value === 'bigint' && value >= -(2n ** 63n) && value < 2n ** 63n),
  compare: (a: number | bigint, b: number | bigint) => (a === b ? 0 : a < b ? -1 : 1),
});
