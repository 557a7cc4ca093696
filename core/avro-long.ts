import avro, { type Type } from 'avsc';

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const methods = {
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
};

interface AvroTap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  writeLong(value: number): void;
}
/** avsc's long of user methods: reads and writes every value through an 8-byte buffer and a bigint. */
interface LongCodec {
  _read(tap: AvroTap): number | bigint | undefined;
  _write(tap: AvroTap, value: number | bigint): void;
}

/** Below 2^48 in magnitude avsc's own varint arithmetic on numbers is exact (a zigzag varint of at most 7 bytes holds 49 bits). */
const SMALL = 2 ** 48;

/**
 * Avro `long` read exactly: a JavaScript number while it fits (|n| ≤ 2^53 − 1, so epoch
 * milliseconds, counts and ids stay plain numbers), a bigint beyond (the shop data set's 19-digit
 * category ids). avsc's default long would silently round the latter; this one writes a bigint
 * or a safe integer and refuses an unsafe number instead of rounding it.
 *
 * Every long of every record goes through it. Through the buffer each one cost an 8-byte buffer
 * and a bigint (two allocations, a share of the lake sink's GC at 1M records); epoch
 * milliseconds, counts and offsets lie far below 2^48, so they take avsc's number path and only
 * a larger value pays for exactness.
 */
export const exactLong: Type = (() => {
  // __with freezes the type it builds: a second instance of its class takes the fast paths too
  const viaBuffer = avro.types.LongType.__with(methods);
  const type = new (viaBuffer.constructor as new (noUnpack: boolean) => LongCodec & Record<string, unknown>)(false);
  Object.assign(type, { _toBuffer: methods.toBuffer, _fromBuffer: methods.fromBuffer, _fromJSON: methods.fromJSON, _toJSON: methods.toJSON, _isValid: methods.isValid, compare: methods.compare });
  const slow = viaBuffer as unknown as LongCodec;
  type._read = (tap) => {
    const { buf, pos } = tap;
    let length = 1;
    while (length <= 7 && buf[pos + length - 1]! & 0x80) length++;
    return length <= 7 ? tap.readLong() : slow._read(tap);
  };
  type._write = (tap, value) => {
    if (typeof value === 'number' && Number.isInteger(value) && value < SMALL && value > -SMALL) tap.writeLong(value);
    else slow._write(tap, value);
  };
  return Object.freeze(type) as unknown as Type;
})();
