import { LakestreamError } from './errors.ts';

/**
 * The lake's naming contracts, each with its one writer and its one parser: the Hive-style
 * partition folders, the sink's file names, and the sink's per-partition state object. The lake
 * sink writes them; compaction and the backfill read them.
 */

/** The Hive-style partition (`dt=YYYY-MM-DD/hour=HH`) of an event time (epoch ms, UTC). */
export function eventTimePartition(eventTimeMs: number): { dt: string; hour: string } {
  const iso = new Date(eventTimeMs).toISOString();
  return { dt: iso.slice(0, 10), hour: iso.slice(11, 13) };
}

export interface SinkFile {
  partition: number;
  first: number;
  last: number;
}

/**
 * A sink file is named from what it holds, the Kafka partition and the first and last offset.
 * The Iceberg sink appends `-<uuid>` before `.parquet`: a fenced owner deletes the files of its
 * flush, which must never be the ones another owner committed for the same range.
 */
export function sinkFileKey(table: string, dt: string, hour: string, file: SinkFile): string {
  return `${table}/dt=${dt}/hour=${hour}/p${file.partition}-${file.first}-${file.last}.parquet`;
}

/** Hex and dashes, as randomUUID writes them. */
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

const sinkFilePattern = new RegExp(`/p(\\d+)-(\\d+)-(\\d+)(?:-${UUID})?\\.parquet$`);

/** The partition and offset range of a sink file's key, or undefined for other files (compacted, backfilled). */
export function parseSinkFileKey(key: string): SinkFile | undefined {
  const match = sinkFilePattern.exec(key);
  return match ? { partition: Number(match[1]), first: Number(match[2]), last: Number(match[3]) } : undefined;
}

/**
 * DuckDB expressions reading the same file-name contract from a `filename` column: the Kafka
 * partition and first offset of a sink file, NULL for any other file.
 */
export function sinkFileSql(filenameColumn: string): { partition: string; firstOffset: string } {
  return {
    partition: `TRY_CAST(regexp_extract(${filenameColumn}, '/p(\\d+)-\\d+-\\d+(?:-${UUID})?\\.parquet$', 1) AS INTEGER)`,
    firstOffset: `TRY_CAST(regexp_extract(${filenameColumn}, '/p\\d+-(\\d+)-\\d+(?:-${UUID})?\\.parquet$', 1) AS BIGINT)`,
  };
}

/**
 * What the lake holds of one Kafka partition. `pending` is an intent written before a flush
 * uploads its files; a crash mid-flush leaves it, and the next owner deletes exactly those files
 * and re-reads the range.
 */
export interface SinkPartitionState {
  /** Last offset durably in the lake; -1 when nothing is. */
  committedThrough: number;
  /** The id of the topic the offsets belong to (absent in states written before it was kept). */
  topicId?: string;
  pending?: { from: number; to: number; files: string[] };
}

export function sinkStateKey(sinkStateRoot: string, partition: number): string {
  return `${sinkStateRoot}/partition=${partition}.json`;
}

/** Reads a state object, refusing one that does not follow the contract (it would corrupt offsets). */
export function parseSinkPartitionState(value: unknown, key: string): SinkPartitionState {
  const state = value as Partial<SinkPartitionState> | null;
  if (!state || typeof state !== 'object' || !Number.isInteger(state.committedThrough) || state.committedThrough! < -1) {
    throw new Error(`${key} is not a sink partition state: ${JSON.stringify(value)?.slice(0, 200)}`);
  }
  const pending = state.pending;
  if (pending !== undefined && (!Number.isInteger(pending.from) || !Number.isInteger(pending.to) || !Array.isArray(pending.files))) {
    throw new Error(`${key} has a malformed pending flush: ${JSON.stringify(pending).slice(0, 200)}`);
  }
  if (state.topicId !== undefined && typeof state.topicId !== 'string') throw new Error(`${key} has a malformed topicId: ${JSON.stringify(state.topicId)}`);
  return { committedThrough: state.committedThrough!, ...(state.topicId ? { topicId: state.topicId } : {}), ...(pending ? { pending } : {}) };
}

/** A lake column derived from an Avro field, with the DuckDB type that keeps it faithful. */
export interface Column {
  name: string;
  sqlType: 'INTEGER' | 'BIGINT' | 'FLOAT' | 'DOUBLE' | 'VARCHAR' | 'BOOLEAN' | 'BLOB';
  nullable: boolean;
}

/**
 * The columns a table that keeps Kafka positions adds after its record's fields; nullable, as
 * rows archived before a table kept them have none.
 */
export const KAFKA_POSITION_COLUMNS: readonly Column[] = [
  { name: '_kafka_partition', sqlType: 'INTEGER', nullable: true },
  { name: '_kafka_offset', sqlType: 'BIGINT', nullable: true },
];

type AvroType = string | { type: string; logicalType?: string } | AvroType[];

const primitive: Record<string, Column['sqlType']> = {
  int: 'INTEGER',
  long: 'BIGINT',
  float: 'FLOAT',
  double: 'DOUBLE',
  string: 'VARCHAR',
  boolean: 'BOOLEAN',
  bytes: 'BLOB',
};

/** Parquet columns for an Avro record schema: int → INT32, long → INT64, double → DOUBLE, … */
export function columnsOf(avroSchema: { type: string; name?: string; fields?: Array<{ name: string; type: AvroType }> }): Column[] {
  if (avroSchema.type !== 'record' || !avroSchema.fields) {
    throw new LakestreamError('USAGE', `lake tables need an Avro record schema, got ${avroSchema.type}`);
  }
  return avroSchema.fields.map((field) => {
    let type = field.type;
    let nullable = false;
    if (Array.isArray(type)) {
      const others = type.filter((branch) => branch !== 'null');
      if (others.length !== 1) throw new LakestreamError('USAGE', `field ${field.name}: only unions of null and one type are supported`);
      nullable = others.length < type.length;
      type = others[0]!;
    }
    const name = typeof type === 'string' ? type : Array.isArray(type) ? 'union' : type.type;
    const sqlType = primitive[name];
    if (!sqlType) throw new LakestreamError('USAGE', `field ${field.name}: Avro type ${name} has no lake column mapping yet`);
    return { name: field.name, sqlType, nullable };
  });
}
