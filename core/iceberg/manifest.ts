import { avroType, readAvroFile, writeAvroFile } from './avro-file.ts';
import type { IcebergSchema } from './schema.ts';

/**
 * Iceberg v2 manifests and manifest lists (Avro, field ids as in the table spec). Every lake
 * table has one partition spec, identity on `dt` (a date, kept as days since 1970-01-01) and on
 * `hour`, so the partition tuple is the same two fields everywhere.
 */

export const STATUS = { EXISTING: 0, ADDED: 1, DELETED: 2 } as const;

export interface Partition {
  /** Days since the epoch (Iceberg's date). */
  dt: number;
  hour: number;
}

export interface DataFile {
  path: string;
  records: bigint;
  sizeBytes: bigint;
  partition: Partition;
}

export interface ManifestEntry {
  status: number;
  snapshotId: bigint;
  sequenceNumber: bigint;
  fileSequenceNumber: bigint;
  file: DataFile;
}

/** One row of a manifest list. */
export interface ManifestFile {
  manifest_path: string;
  manifest_length: bigint;
  partition_spec_id: number;
  content: number;
  sequence_number: bigint;
  min_sequence_number: bigint;
  added_snapshot_id: bigint;
  added_files_count: number;
  existing_files_count: number;
  deleted_files_count: number;
  added_rows_count: bigint;
  existing_rows_count: bigint;
  deleted_rows_count: bigint;
  partitions: Array<{ contains_null: boolean; contains_nan: boolean | null; lower_bound: Buffer | null; upper_bound: Buffer | null }> | null;
  key_metadata: Buffer | null;
}

const optional = (type: unknown) => ['null', type];

const partitionRecord = {
  type: 'record',
  name: 'r102',
  fields: [
    { name: 'dt', type: optional({ type: 'int', logicalType: 'date' }), default: null, 'field-id': 1000 },
    { name: 'hour', type: optional('int'), default: null, 'field-id': 1001 },
  ],
};

const manifestEntrySchema = {
  type: 'record',
  name: 'manifest_entry',
  fields: [
    { name: 'status', type: 'int', 'field-id': 0 },
    { name: 'snapshot_id', type: optional('long'), default: null, 'field-id': 1 },
    { name: 'sequence_number', type: optional('long'), default: null, 'field-id': 3 },
    { name: 'file_sequence_number', type: optional('long'), default: null, 'field-id': 4 },
    {
      name: 'data_file',
      'field-id': 2,
      type: {
        type: 'record',
        name: 'r2',
        fields: [
          { name: 'content', type: 'int', 'field-id': 134 },
          { name: 'file_path', type: 'string', 'field-id': 100 },
          { name: 'file_format', type: 'string', 'field-id': 101 },
          { name: 'partition', type: partitionRecord, 'field-id': 102 },
          { name: 'record_count', type: 'long', 'field-id': 103 },
          { name: 'file_size_in_bytes', type: 'long', 'field-id': 104 },
        ],
      },
    },
  ],
};

const fieldSummary = {
  type: 'record',
  name: 'r508',
  fields: [
    { name: 'contains_null', type: 'boolean', 'field-id': 509 },
    { name: 'contains_nan', type: optional('boolean'), default: null, 'field-id': 518 },
    { name: 'lower_bound', type: optional('bytes'), default: null, 'field-id': 510 },
    { name: 'upper_bound', type: optional('bytes'), default: null, 'field-id': 511 },
  ],
};

const manifestFileSchema = {
  type: 'record',
  name: 'manifest_file',
  fields: [
    { name: 'manifest_path', type: 'string', 'field-id': 500 },
    { name: 'manifest_length', type: 'long', 'field-id': 501 },
    { name: 'partition_spec_id', type: 'int', 'field-id': 502 },
    { name: 'content', type: 'int', 'field-id': 517 },
    { name: 'sequence_number', type: 'long', 'field-id': 515 },
    { name: 'min_sequence_number', type: 'long', 'field-id': 516 },
    { name: 'added_snapshot_id', type: 'long', 'field-id': 503 },
    { name: 'added_files_count', type: 'int', 'field-id': 504 },
    { name: 'existing_files_count', type: 'int', 'field-id': 505 },
    { name: 'deleted_files_count', type: 'int', 'field-id': 506 },
    { name: 'added_rows_count', type: 'long', 'field-id': 512 },
    { name: 'existing_rows_count', type: 'long', 'field-id': 513 },
    { name: 'deleted_rows_count', type: 'long', 'field-id': 514 },
    { name: 'partitions', type: optional({ type: 'array', items: fieldSummary, 'element-id': 508 }), default: null, 'field-id': 507 },
    { name: 'key_metadata', type: optional('bytes'), default: null, 'field-id': 519 },
  ],
};

// Checked once at load: a typo in a schema above fails every import, not the first commit.
avroType(manifestEntrySchema);
avroType(manifestFileSchema);

const int32 = (value: number) => {
  const buffer = Buffer.alloc(4);
  buffer.writeInt32LE(value);
  return buffer;
};

function partitionSummaries(files: DataFile[]): ManifestFile['partitions'] {
  const bounds = (values: number[]) => ({ contains_null: false, contains_nan: false, lower_bound: int32(Math.min(...values)), upper_bound: int32(Math.max(...values)) });
  if (!files.length) return [];
  return [bounds(files.map((f) => f.partition.dt)), bounds(files.map((f) => f.partition.hour))];
}

interface RawEntry {
  status: number;
  snapshot_id: bigint | null;
  sequence_number: bigint | null;
  file_sequence_number: bigint | null;
  data_file: { content: number; file_path: string; file_format: string; partition: { dt: number | null; hour: number | null }; record_count: bigint; file_size_in_bytes: bigint };
}

/**
 * Writes one data manifest. Entries ADDED by `snapshotId` leave their sequence numbers null,
 * so they inherit the snapshot's from the manifest list (the spec's rule, which lets a retried
 * commit keep its manifests when only the sequence number moved); other entries keep theirs.
 */
export async function writeManifest(
  entries: ManifestEntry[],
  table: { schema: IcebergSchema; spec: { 'spec-id': number; fields: unknown[] } },
  snapshotId: bigint,
): Promise<{ body: Buffer; summary: Omit<ManifestFile, 'manifest_path' | 'manifest_length' | 'sequence_number' | 'min_sequence_number'> & { minSequenceNumber?: bigint } }> {
  const raw: RawEntry[] = entries.map((entry) => {
    const inherits = entry.status === STATUS.ADDED && entry.snapshotId === snapshotId;
    return {
      status: entry.status,
      snapshot_id: entry.snapshotId,
      sequence_number: inherits ? null : entry.sequenceNumber,
      file_sequence_number: inherits ? null : entry.fileSequenceNumber,
      data_file: {
        content: 0,
        file_path: entry.file.path,
        file_format: 'PARQUET',
        partition: { dt: entry.file.partition.dt, hour: entry.file.partition.hour },
        record_count: entry.file.records,
        file_size_in_bytes: entry.file.sizeBytes,
      },
    };
  });
  const body = await writeAvroFile(manifestEntrySchema, raw, {
    schema: JSON.stringify(table.schema),
    'schema-id': String(table.schema['schema-id']),
    'partition-spec': JSON.stringify(table.spec.fields),
    'partition-spec-id': String(table.spec['spec-id']),
    'format-version': '2',
    content: 'data',
  });
  const count = (status: number) => entries.filter((e) => e.status === status);
  const rows = (list: ManifestEntry[]) => list.reduce((sum, e) => sum + e.file.records, 0n);
  const kept = entries.filter((e) => !(e.status === STATUS.ADDED && e.snapshotId === snapshotId));
  return {
    body,
    summary: {
      partition_spec_id: table.spec['spec-id'],
      content: 0,
      added_snapshot_id: snapshotId,
      added_files_count: count(STATUS.ADDED).length,
      existing_files_count: count(STATUS.EXISTING).length,
      deleted_files_count: count(STATUS.DELETED).length,
      added_rows_count: rows(count(STATUS.ADDED)),
      existing_rows_count: rows(count(STATUS.EXISTING)),
      deleted_rows_count: rows(count(STATUS.DELETED)),
      partitions: partitionSummaries(entries.map((e) => e.file)),
      key_metadata: null,
      ...(kept.length ? { minSequenceNumber: kept.reduce((min, e) => (e.sequenceNumber < min ? e.sequenceNumber : min), kept[0]!.sequenceNumber) } : {}),
    },
  };
}

/** Reads a manifest's entries, resolving inherited snapshot ids and sequence numbers from its list row. */
export async function readManifest(body: Buffer, listed: Pick<ManifestFile, 'added_snapshot_id' | 'sequence_number'>): Promise<ManifestEntry[]> {
  const { records } = await readAvroFile<RawEntry>(body);
  return records.map((raw) => {
    const inherited = raw.status === STATUS.ADDED;
    const sequenceNumber = raw.sequence_number ?? (inherited ? listed.sequence_number : 0n);
    return {
      status: raw.status,
      snapshotId: raw.snapshot_id ?? listed.added_snapshot_id,
      sequenceNumber,
      fileSequenceNumber: raw.file_sequence_number ?? (inherited ? listed.sequence_number : sequenceNumber),
      file: {
        path: raw.data_file.file_path,
        records: BigInt(raw.data_file.record_count),
        sizeBytes: BigInt(raw.data_file.file_size_in_bytes),
        partition: { dt: raw.data_file.partition?.dt ?? 0, hour: raw.data_file.partition?.hour ?? 0 },
      },
    };
  });
}

export async function writeManifestList(manifests: ManifestFile[], snapshot: { snapshotId: bigint; parentId?: bigint; sequenceNumber: bigint }): Promise<Buffer> {
  return writeAvroFile(manifestFileSchema, manifests, {
    'snapshot-id': String(snapshot.snapshotId),
    'parent-snapshot-id': snapshot.parentId === undefined ? 'null' : String(snapshot.parentId),
    'sequence-number': String(snapshot.sequenceNumber),
    'format-version': '2',
  });
}

export async function readManifestList(body: Buffer): Promise<ManifestFile[]> {
  const { records } = await readAvroFile<ManifestFile>(body);
  return records.map((r) => ({ ...r, added_snapshot_id: BigInt(r.added_snapshot_id), sequence_number: BigInt(r.sequence_number), min_sequence_number: BigInt(r.min_sequence_number) }));
}
