import { PassThrough } from 'node:stream';
import avro from 'avsc';

/**
 * Avro object container files with Iceberg's conventions: every long is a bigint (snapshot ids
 * use all 64 bits, beyond a JS number's 53), and the schema written into the header keeps its
 * `field-id` attributes, which Iceberg readers (Java, PyIceberg, DuckDB) match columns by.
 */
const BigLong = avro.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => buffer.readBigInt64LE(),
  toBuffer: (value: bigint) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64LE(BigInt(value));
    return buffer;
  },
  fromJSON: (value: unknown) => BigInt(value as number),
  toJSON: (value: bigint) => Number(value),
  isValid: (value: unknown) => typeof value === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

const typeOptions = () => ({ registry: { long: BigLong } as Record<string, avro.Type>, wrapUnions: false as const });

export function avroType(schema: object): avro.Type {
  return avro.Type.forSchema(schema as avro.Schema, typeOptions());
}

/** Encodes `records` as one container file whose header carries `schema` verbatim and `metadata`. */
export async function writeAvroFile(schema: object, records: unknown[], metadata: Record<string, string>): Promise<Buffer> {
  const type = avroType(schema);
  // avsc's typings omit `metadata`, which BlockEncoder does take (and writes into the header)
  const encoderOptions = {
    codec: 'deflate',
    metadata: Object.fromEntries(Object.entries(metadata).map(([key, value]) => [key, Buffer.from(value)])),
    writeHeader: 'auto',
  } as unknown as ConstructorParameters<typeof avro.streams.BlockEncoder>[1];
  const encoder = new avro.streams.BlockEncoder(type, encoderOptions);
  // BlockEncoder writes type.getSchema(), which drops field ids; the header must carry them.
  const internals = encoder as unknown as { _schema: object; _needHeader: boolean; _writeHeader(): void };
  internals._schema = schema;
  if (!records.length) {
    internals._writeHeader();
    internals._needHeader = false;
  }
  const chunks: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    sink.on('end', resolve);
    encoder.on('error', reject);
  });
  encoder.pipe(sink);
  for (const record of records) encoder.write(record);
  encoder.end();
  await done;
  return Buffer.concat(chunks);
}

/** Decodes a container file with the writer's schema (from its header), longs as bigints. */
export async function readAvroFile<T>(body: Buffer): Promise<{ records: T[]; metadata: Record<string, string> }> {
  const decoder = new avro.streams.BlockDecoder({ parseHook: (schema: avro.Schema) => avroType(schema as object) });
  const records: T[] = [];
  let metadata: Record<string, string> = {};
  decoder.on('metadata', (_type: unknown, _codec: unknown, header: { meta: Record<string, Buffer> }) => {
    metadata = Object.fromEntries(Object.entries(header.meta).map(([key, value]) => [key, value.toString()]));
  });
  decoder.on('data', (record: T) => records.push(record));
  await new Promise<void>((resolve, reject) => {
    decoder.on('end', resolve);
    decoder.on('error', reject);
    decoder.end(body);
  });
  return { records, metadata };
}
