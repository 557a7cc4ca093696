import assert from 'node:assert/strict';
import { test } from 'node:test';
import avro from 'avsc';
import { exactLong } from '../../core/avro-long.ts';

const type = avro.Type.forSchema({ type: 'record', name: 'R', fields: [{ name: 'n', type: 'long' }] }, { typeHook: (schema: unknown) => (schema === 'long' ? exactLong : undefined) } as never);

/** The Avro encoding of a long, computed with bigints: the zigzag varint of the spec. */
function reference(n: bigint): Buffer {
  let zigzag = BigInt.asUintN(64, (n << 1n) ^ (n >> 63n));
  const bytes: number[] = [];
  do {
    const low = Number(zigzag & 0x7fn);
    zigzag >>= 7n;
    bytes.push(zigzag ? low | 0x80 : low);
  } while (zigzag);
  return Buffer.from(bytes);
}

const edges = [0n, 1n, -1n, 63n, -64n, 64n, 2n ** 31n, -(2n ** 31n) - 1n, 2n ** 47n, 2n ** 48n - 1n, -(2n ** 48n) + 1n, 2n ** 48n, -(2n ** 48n), 2n ** 53n - 1n, -(2n ** 53n) + 1n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n), 1_733_574_000_123n];

test('exact long: the Avro bytes of the spec, decoded to the same value, a number while it is safe and a bigint beyond', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const values = [...edges];
  // every varint length from 1 to 10 bytes, both signs
  for (let bits = 1n; bits < 64n; bits++) for (let i = 0; i < 20; i++) values.push(BigInt.asIntN(64, BigInt(Math.floor(random() * 2 ** 30)) * 2n ** (bits > 30n ? bits - 30n : 0n)) * (i % 2 ? -1n : 1n));
  for (const n of values) {
    const safe = n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= -BigInt(Number.MAX_SAFE_INTEGER);
    const written = type.toBuffer({ n: safe ? Number(n) : n });
    assert.deepEqual(written, reference(n), `the bytes of ${n}`);
    if (safe) assert.deepEqual(type.toBuffer({ n }), written, `${n} given as a bigint`);
    const read = (type.fromBuffer(written) as { n: number | bigint }).n;
    assert.equal(typeof read, safe ? 'number' : 'bigint', `the type of ${n} read back`);
    assert.equal(BigInt(read), n, `${n} read back`);
  }
});

test('exact long: an unsafe number is refused rather than rounded, a truncated varint is an error', () => {
  assert.throws(() => type.toBuffer({ n: 2 ** 53 }), /invalid/i);
  assert.throws(() => type.toBuffer({ n: 1.5 }), /invalid/i);
  const whole = reference(2n ** 40n);
  assert.throws(() => type.fromBuffer(whole.subarray(0, whole.length - 1)), /truncated/i);
  const long = reference(2n ** 60n);
  assert.throws(() => type.fromBuffer(long.subarray(0, long.length - 1)), /truncated/i);
});
