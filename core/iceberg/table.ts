import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { LakestreamError, errorMessage } from '../errors.ts';
import type { Column } from '../lake-layout.ts';
import type { ObjectStore } from '../object-store.ts';
import { readManifest, readManifestList, STATUS, writeManifest, writeManifestList, type DataFile, type ManifestEntry, type ManifestFile } from './manifest.ts';
import { CommitConflict, CommitStateUnknown, type LoadedTable, type RestCatalog, type Requirement, type Snapshot, type Update } from './rest-catalog.ts';
import { evolveSchema, partitionSpec, type IcebergSchema } from './schema.ts';

/**
 * Lake tables as Iceberg v2 tables: creating them, reading their state, and committing
 * snapshots. A commit writes its manifests and manifest list first (nothing a reader can see),
 * then asks the catalog to move `main` from the snapshot it was planned on to the new one. The
 * catalog refuses (409) if anything else committed in between, so a writer never overwrites a
 * concurrent change; it re-reads the table and plans again, or gives up if the change made its
 * plan wrong (see the callers: the sink checks its offsets, compaction its input files).
 *
 * Kafka offsets live in the snapshot summary: every snapshot carries the whole map of the
 * table's source topic (partition → next offset to archive) and the topic id, copied forward by
 * commits that do not move them (compaction, backfill), so the current snapshot alone says how
 * far the table has archived its topic. A derived table's backfill covers (how far the archive
 * went that each recomputed day was computed from) are carried the same way.
 */

export interface TableRef {
  namespace: string[];
  name: string;
}

export const tableName = (ref: TableRef) => `${ref.namespace.join('.')}.${ref.name}`;

export interface KafkaOffsets {
  topic: string;
  topicId: string;
  /** Kafka partition → the next offset the table has not archived. */
  next: Record<number, number>;
}

export interface TableState {
  ref: TableRef;
  loaded: LoadedTable;
  snapshot: Snapshot | undefined;
  schema: IcebergSchema;
  offsets: KafkaOffsets | undefined;
  /** Per event day (YYYY-MM-DD) a backfill recomputed: the input topic's partition → next offset its archive held. */
  covers: BackfillCovers;
}

export type BackfillCovers = Record<string, Record<number, number>>;

export const SUMMARY = {
  topic: 'lakestream.kafka.topic',
  topicId: 'lakestream.kafka.topic-id',
  offsets: 'lakestream.kafka.offsets',
  covers: 'lakestream.backfill.covers',
  writer: 'lakestream.writer',
} as const;

export interface TableDeps {
  catalog: RestCatalog;
  store: ObjectStore;
}

/** Defaults for every lake table; a file of 128 MiB is what compaction aims at. */
export const TABLE_PROPERTIES: Record<string, string> = {
  'format-version': '2',
  'write.format.default': 'parquet',
  'write.parquet.compression-codec': 'zstd',
  'write.target-file-size-bytes': String(128 * 1024 * 1024),
  'commit.retry.num-retries': '10',
  'history.expire.min-snapshots-to-keep': '20',
  'history.expire.max-snapshot-age-ms': String(24 * 3600 * 1000),
};

/**
 * Creates the namespace and the table if absent; returns the table's state. The namespace's
 * `location` property is where the catalog puts its tables (`<location>/<table>_<uuid>`).
 */
export async function ensureTable(deps: TableDeps, ref: TableRef, columns: Column[], namespaceLocation: string, sortField?: string): Promise<TableState> {
  const existing = await loadTableState(deps, ref);
  if (existing?.snapshot) return existing;
  if (existing) return initialise(deps, existing);
  await deps.catalog.createNamespace(ref.namespace, { location: namespaceLocation });
  const { schema } = evolveSchema(undefined, columns);
  const sortSource = sortField ? schema.fields.find((field) => field.name === sortField) : undefined;
  // Created unpartitioned, then initialised by one commit that adds the partition spec and an
  // empty first snapshot under `assert-default-spec-id`: only one creator's initialisation can
  // land. (Nessie 0.99 does not enforce `"snapshot-id": null`, the usual "no snapshot yet"
  // requirement: a paused creator's late first commit replaced a table's whole history in a chaos
  // run. Every later commit requires a real snapshot id.)
  await deps.catalog.createTable(ref.namespace, ref.name, {
    schema,
    ...(sortSource
      ? { 'write-order': { 'order-id': 1, fields: [{ transform: 'identity', 'source-id': sortSource.id, direction: 'asc', 'null-order': 'nulls-first' }] } }
      : {}),
    properties: TABLE_PROPERTIES,
  });
  const created = await loadTableState(deps, ref);
  if (!created) throw new LakestreamError('ICEBERG_ERROR', `table ${tableName(ref)} was created but cannot be loaded`);
  return created.snapshot ? created : initialise(deps, created);
}

/** The table's first commit; a creator that lost the race to it reads the winner's. */
async function initialise(deps: TableDeps, created: TableState): Promise<TableState> {
  try {
    return await commitSnapshot(deps, created, { operation: 'append', added: [], writer: 'create', initialize: true });
  } catch (error) {
    if (!(error instanceof CommitConflict || error instanceof CommitStateUnknown)) throw error;
    const initialised = await loadTableState(deps, created.ref);
    if (!initialised?.snapshot) throw error;
    return initialised;
  }
}

export async function loadTableState(deps: TableDeps, ref: TableRef): Promise<TableState | undefined> {
  const loaded = await deps.catalog.loadTable(ref.namespace, ref.name);
  return loaded ? stateOf(ref, loaded) : undefined;
}

function stateOf(ref: TableRef, loaded: LoadedTable): TableState {
  const metadata = loaded.metadata;
  const currentId = metadata.refs?.main?.['snapshot-id'] ?? metadata['current-snapshot-id'] ?? undefined;
  const snapshot = currentId === undefined || currentId === null || currentId === -1n ? undefined : metadata.snapshots?.find((s) => s['snapshot-id'] === currentId);
  const schema = metadata.schemas.find((s) => s['schema-id'] === metadata['current-schema-id']);
  if (!schema) throw new LakestreamError('ICEBERG_ERROR', `table ${tableName(ref)} has no current schema ${metadata['current-schema-id']}`);
  return { ref, loaded, snapshot, schema, offsets: snapshot ? offsetsOf(snapshot) : undefined, covers: snapshot ? coversOf(snapshot) : {} };
}

export function offsetsOf(snapshot: Snapshot): KafkaOffsets | undefined {
  const raw = snapshot.summary[SUMMARY.offsets];
  if (!raw) return undefined;
  let next: Record<number, number>;
  try {
    next = JSON.parse(raw) as Record<number, number>;
  } catch (cause) {
    throw new LakestreamError('ICEBERG_ERROR', `snapshot ${snapshot['snapshot-id']}: ${SUMMARY.offsets} is not JSON: ${raw.slice(0, 100)}`, { cause });
  }
  return { topic: snapshot.summary[SUMMARY.topic] ?? '', topicId: snapshot.summary[SUMMARY.topicId] ?? '', next };
}

function coversOf(snapshot: Snapshot): BackfillCovers {
  const raw = snapshot.summary[SUMMARY.covers];
  if (!raw) return {};
  try {
    return JSON.parse(raw) as BackfillCovers;
  } catch (cause) {
    throw new LakestreamError('ICEBERG_ERROR', `snapshot ${snapshot['snapshot-id']}: ${SUMMARY.covers} is not JSON: ${raw.slice(0, 100)}`, { cause });
  }
}

/** The object key of an `s3://<bucket>/<key>` location in the lake bucket. */
export function keyOf(store: ObjectStore, location: string): string {
  const prefix = `s3://${store.bucket}/`;
  if (!location.startsWith(prefix)) throw new LakestreamError('ICEBERG_ERROR', `${location} is not in the lake bucket ${store.bucket}`);
  return location.slice(prefix.length);
}

async function readObject(store: ObjectStore, location: string): Promise<Buffer> {
  const body = await store.get(keyOf(store, location));
  if (!body) throw new LakestreamError('ICEBERG_ERROR', `${location} is referenced by the table but missing from the store`, { context: { location } });
  return body;
}

export async function manifestsOf(deps: TableDeps, state: TableState): Promise<ManifestFile[]> {
  return state.snapshot ? readManifestList(await readObject(deps.store, state.snapshot['manifest-list'])) : [];
}

/**
 * Manifests are never rewritten in place (each write has a new random name), so their decoded
 * entries are kept: a writer that re-plans after a refused commit, or lists live files and then
 * commits, reads the hundred manifests of a busy table once instead of on every attempt. Bounded
 * by the entries held (a merged manifest holds every live file), oldest use out first.
 */
const manifestCache = new Map<string, { entries: Promise<ManifestEntry[]>; weight: number }>();
const ENTRIES_CACHED = 20_000;
let entriesCached = 0;

/** The entries of a listed manifest (callers copy an entry before changing it). */
function entriesOf(store: ObjectStore, manifest: ManifestFile): Promise<ManifestEntry[]> {
  // an added entry inherits its sequence number from the listing, so that is part of the key
  const key = `${manifest.manifest_path}#${manifest.sequence_number}#${manifest.added_snapshot_id}`;
  const cached = manifestCache.get(key);
  if (cached) {
    manifestCache.delete(key);
    manifestCache.set(key, cached);
    return cached.entries;
  }
  const weight = 1 + manifest.added_files_count + manifest.existing_files_count + manifest.deleted_files_count;
  const entries = readObject(store, manifest.manifest_path).then((body) => readManifest(body, manifest));
  const slot = { entries, weight };
  entries.catch(() => {
    if (manifestCache.get(key) !== slot) return;
    manifestCache.delete(key);
    entriesCached -= weight;
  });
  if (weight > ENTRIES_CACHED) return entries;
  manifestCache.set(key, slot);
  entriesCached += weight;
  for (const [oldest, { weight: held }] of manifestCache) {
    if (entriesCached <= ENTRIES_CACHED) break;
    manifestCache.delete(oldest);
    entriesCached -= held;
  }
  return entries;
}

/** Every live data file of the current snapshot (added or existing, not deleted). */
export async function liveFiles(deps: TableDeps, state: TableState): Promise<ManifestEntry[]> {
  const data = (await manifestsOf(deps, state)).filter((manifest) => manifest.content === 0);
  const read = await Promise.all(data.map((manifest) => entriesOf(deps.store, manifest)));
  return read.flat().filter((entry) => entry.status !== STATUS.DELETED);
}

export interface SnapshotChange {
  operation: 'append' | 'replace' | 'overwrite' | 'delete';
  added: DataFile[];
  /** Paths of live files this snapshot removes; each must be live in the base (else: conflict). */
  removed?: Set<string>;
  /** The columns of the rows added: the table schema evolves to hold them (in this commit). */
  columns?: Column[][];
  /** Replaces the Kafka offsets carried from the base snapshot. */
  offsets?: KafkaOffsets;
  /** Replaces the backfill covers carried from the base snapshot. */
  covers?: BackfillCovers;
  /** The table's first commit (ensureTable): adds the partition spec, fenced by the default spec id. */
  initialize?: boolean;
  /** Table properties set in the same commit (a marker that must move with the data). */
  properties?: Record<string, string>;
  writer: string;
  /** Kept across the attempts of one commit (see ManifestRewrites). */
  rewrites?: ManifestRewrites;
}

/**
 * What the attempts of one commit share: its snapshot id, and the manifests it rewrote to mark its
 * removed files deleted. A manifest is immutable, so its rewrite depends only on the snapshot id,
 * the schema and which of its files go: an attempt planned on a newer snapshot (a sink appended
 * meanwhile) writes only the rewrites it has not written yet, as Java's MergingSnapshotProducer
 * keeps one snapshot id per commit.
 * Rewrites the landed snapshot does not list (a merge folded them in, or the commit never landed)
 * are the caller's to delete with `dropUnusedRewrites`.
 */
export interface ManifestRewrites {
  snapshotId: bigint;
  /** By schema id, the manifest rewritten and the files it marks deleted. */
  byManifest: Map<string, { path: string; length: bigint; summary: Awaited<ReturnType<typeof writeManifest>>['summary'] }>;
  /** The manifests the last attempt listed. */
  listed: Set<string>;
}

export function manifestRewrites(): ManifestRewrites {
  return { snapshotId: randomSnapshotId(), byManifest: new Map(), listed: new Set() };
}

/** Deletes the shared rewrites no snapshot references: all of them if the commit did not land. */
export async function dropUnusedRewrites(store: ObjectStore, rewrites: ManifestRewrites, landed: boolean): Promise<void> {
  const unused = [...rewrites.byManifest.values()].map((rewrite) => rewrite.path).filter((path) => !landed || !rewrites.listed.has(path));
  if (unused.length) await store.delete(unused.map((path) => keyOf(store, path))).catch(() => {});
}

/**
 * Whether a commit whose answer was lost is in the table: its snapshot is, or else every file it
 * added is live. The second test is needed because Nessie keeps only the current snapshot in a
 * table's metadata: once another writer has committed on top, the id is gone (and a writer that
 * then took its files for garbage would delete rows the table holds).
 */
async function landed(deps: TableDeps, now: TableState, snapshotId: bigint, added: DataFile[]): Promise<boolean> {
  if (now.snapshot?.['snapshot-id'] === snapshotId || now.loaded.metadata.snapshots?.some((s) => s['snapshot-id'] === snapshotId)) return true;
  if (!added.length) return false;
  const live = new Set((await liveFiles(deps, now).catch(() => [])).map((entry) => entry.file.path));
  return added.every((file) => live.has(file.path));
}

/** How many manifests a snapshot may list before a commit merges them into one. */
export const MERGE_MANIFESTS_AT = 100;

const randomSnapshotId = () => randomBytes(8).readBigInt64BE() & 0x7fff_ffff_ffff_ffffn;

const summaryNumber = (snapshot: Snapshot | undefined, key: string) => BigInt(snapshot?.summary[key] ?? '0');

/**
 * The new snapshot's manifests: the base's, with those holding removed files rewritten (the
 * files marked deleted by this snapshot), merged into one past MERGE_MANIFESTS_AT, and one for
 * the added files first. Throws CommitConflict if a file to remove is no longer live.
 */
async function planManifests(
  deps: TableDeps,
  base: TableState,
  change: SnapshotChange,
  plan: {
    table: Parameters<typeof writeManifest>[1];
    snapshotId: bigint;
    sequenceNumber: bigint;
    put: (name: string, body: Buffer) => Promise<{ path: string; length: bigint }>;
    putKept: (name: string, body: Buffer) => Promise<{ path: string; length: bigint }>;
  },
): Promise<{ manifests: ManifestFile[]; removedRows: bigint; removedBytes: bigint }> {
  const { store } = deps;
  const { table, snapshotId, sequenceNumber, put, putKept } = plan;
  const manifests: ManifestFile[] = [];
  const removed = change.removed ?? new Set<string>();
  let removedRows = 0n;
  let removedBytes = 0n;
  const found = new Set<string>();
  const listed = await manifestsOf(deps, base);
  // read side by side (and kept): a busy table lists up to a hundred manifests
  const reads = listed.map((manifest) => (removed.size > 0 && manifest.content === 0 ? entriesOf(store, manifest) : undefined));
  for (const [index, manifest] of listed.entries()) {
    const hit = await reads[index];
    if (!hit || !hit.some((entry) => entry.status !== STATUS.DELETED && removed.has(entry.file.path))) {
      manifests.push(manifest);
      continue;
    }
    // Rewritten with the removed files marked deleted by this snapshot and the rest existing.
    const entries: ManifestEntry[] = [];
    for (const entry of hit) {
      if (entry.status === STATUS.DELETED) continue;
      if (removed.has(entry.file.path)) {
        found.add(entry.file.path);
        removedRows += entry.file.records;
        removedBytes += entry.file.sizeBytes;
        entries.push({ ...entry, status: STATUS.DELETED, snapshotId });
      } else {
        entries.push({ ...entry, status: STATUS.EXISTING });
      }
    }
    // what the rewrite depends on besides the snapshot id: the schema and which of its files go
    const goneHere = entries.filter((entry) => entry.status === STATUS.DELETED).map((entry) => entry.file.path);
    const rewriteKey = `${table.schema['schema-id']}:${manifest.manifest_path}:${createHash('sha256').update(goneHere.sort().join('\n')).digest('hex')}`;
    let rewrite = change.rewrites?.byManifest.get(rewriteKey);
    if (!rewrite) {
      const { body, summary } = await writeManifest(entries, table, snapshotId);
      // a shared rewrite outlives this attempt: it is not this attempt's to delete on a refusal
      const { path, length } = change.rewrites ? await putKept(`${randomUUID()}-m-rewrite.avro`, body) : await put(`${randomUUID()}-m-rewrite.avro`, body);
      rewrite = { path, length, summary };
      change.rewrites?.byManifest.set(rewriteKey, rewrite);
    }
    const { path, length, summary } = rewrite;
    manifests.unshift({
      ...summary,
      manifest_path: path,
      manifest_length: length,
      sequence_number: sequenceNumber,
      min_sequence_number: summary.minSequenceNumber ?? sequenceNumber,
    });
  }
  if (manifests.length >= MERGE_MANIFESTS_AT) {
    // One manifest per commit would grow every commit's manifest list and every reader's
    // planning without bound: past a hundred, they are merged into one (as Iceberg's Java
    // writers do), each live file kept with its own sequence numbers.
    const entries: ManifestEntry[] = [];
    for (const manifest of manifests) {
      for (const entry of await entriesOf(store, manifest)) {
        if (entry.status !== STATUS.DELETED) entries.push({ ...entry, status: STATUS.EXISTING });
      }
    }
    const { body, summary } = await writeManifest(entries, table, snapshotId);
    const { path, length } = await put(`${randomUUID()}-m-merged.avro`, body);
    manifests.length = 0;
    manifests.push({ ...summary, manifest_path: path, manifest_length: length, sequence_number: sequenceNumber, min_sequence_number: summary.minSequenceNumber ?? sequenceNumber });
  }
  if (change.rewrites) change.rewrites.listed = new Set(manifests.map((manifest) => manifest.manifest_path));
  const missing = [...removed].filter((path) => !found.has(path));
  if (missing.length) {
    throw new CommitConflict(tableName(base.ref), `${missing.length} file(s) to remove are no longer live (e.g. ${missing[0]})`);
  }
  if (change.added.length) {
    const entries = change.added.map((file) => ({ status: STATUS.ADDED, snapshotId, sequenceNumber, fileSequenceNumber: sequenceNumber, file }));
    const { body, summary } = await writeManifest(entries, table, snapshotId);
    const { path, length } = await put(`${randomUUID()}-m0.avro`, body);
    manifests.unshift({ ...summary, manifest_path: path, manifest_length: length, sequence_number: sequenceNumber, min_sequence_number: sequenceNumber });
  }
  return { manifests, removedRows, removedBytes };
}

/**
 * Commits `change` on top of `base`, under a requirement that `main` still points at base's
 * snapshot. Returns the new state. Throws CommitConflict if the table moved (or a removed file
 * is no longer live); the new manifests are deleted then, and nothing of the attempt is visible.
 * If the catalog's answer was lost, the table is re-read: a snapshot of ours that landed is a
 * success.
 */
export async function commitSnapshot(deps: TableDeps, base: TableState, change: SnapshotChange): Promise<TableState> {
  const { store, catalog } = deps;
  const snapshotId = change.rewrites?.snapshotId ?? randomSnapshotId();
  const sequenceNumber = base.loaded.metadata['last-sequence-number'] + 1n;
  const location = base.loaded.metadata.location.replace(/\/+$/, '');
  const written: string[] = [];
  const putKept = async (name: string, body: Buffer) => {
    const path = `${location}/metadata/${name}`;
    await store.put(keyOf(store, path), body, 'application/octet-stream');
    return { path, length: BigInt(body.length) };
  };
  const put = async (name: string, body: Buffer) => {
    const kept = await putKept(name, body);
    written.push(kept.path);
    return kept;
  };

  // The schema: evolved to hold the rows of every column set added.
  let schema = base.schema;
  let lastColumnId = base.loaded.metadata['last-column-id'];
  let schemaChanged = false;
  for (const columns of change.columns ?? []) {
    const evolved = evolveSchema({ schema, lastColumnId }, columns);
    if (evolved.changed) {
      const nextId = Math.max(...base.loaded.metadata.schemas.map((s) => s['schema-id'])) + 1;
      schema = { ...evolved.schema, 'schema-id': nextId };
      lastColumnId = evolved.lastColumnId;
      schemaChanged = true;
    }
  }
  if (!base.snapshot && !change.initialize) {
    throw new LakestreamError('ICEBERG_ERROR', `table ${tableName(base.ref)} has no snapshot: it was not created by ensureTable`, { context: { table: tableName(base.ref) } });
  }
  const metadata = base.loaded.metadata;
  const specId = change.initialize ? Math.max(...metadata['partition-specs'].map((spec) => spec['spec-id'])) + 1 : metadata['default-spec-id'];
  const spec = change.initialize ? { ...partitionSpec(schema), 'spec-id': specId } : metadata['partition-specs'].find((candidate) => candidate['spec-id'] === specId);
  if (!spec) throw new LakestreamError('ICEBERG_ERROR', `table ${tableName(base.ref)} has no partition spec ${specId}`);
  const table = { schema, spec };

  try {
    const removed = change.removed ?? new Set<string>();
    const { manifests, removedRows, removedBytes } = await planManifests(deps, base, change, { table, snapshotId, sequenceNumber, put, putKept });
    const parentId = base.snapshot?.['snapshot-id'];
    const list = await writeManifestList(manifests, { snapshotId, parentId, sequenceNumber });
    const { path: manifestList } = await put(`snap-${snapshotId}-1-${randomUUID()}.avro`, list);

    const addedRows = change.added.reduce((sum, file) => sum + file.records, 0n);
    const addedBytes = change.added.reduce((sum, file) => sum + file.sizeBytes, 0n);
    const partitions = new Set([...change.added.map((f) => `${f.partition.dt}/${f.partition.hour}`)]);
    const carried: Record<string, string> = {};
    for (const key of [SUMMARY.topic, SUMMARY.topicId, SUMMARY.offsets, SUMMARY.covers]) {
      const value = base.snapshot?.summary[key];
      if (value !== undefined) carried[key] = value;
    }
    const offsets: Record<string, string> = change.offsets
      ? { [SUMMARY.topic]: change.offsets.topic, [SUMMARY.topicId]: change.offsets.topicId, [SUMMARY.offsets]: JSON.stringify(change.offsets.next) }
      : {};
    if (change.covers) offsets[SUMMARY.covers] = JSON.stringify(change.covers);
    const summary: Record<string, string> & { operation: string } = {
      operation: change.operation,
      'added-data-files': String(change.added.length),
      'added-records': String(addedRows),
      'added-files-size': String(addedBytes),
      'deleted-data-files': String(removed.size),
      'deleted-records': String(removedRows),
      'removed-files-size': String(removedBytes),
      'changed-partition-count': String(partitions.size),
      'total-data-files': String(summaryNumber(base.snapshot, 'total-data-files') + BigInt(change.added.length) - BigInt(removed.size)),
      'total-records': String(summaryNumber(base.snapshot, 'total-records') + addedRows - removedRows),
      'total-files-size': String(summaryNumber(base.snapshot, 'total-files-size') + addedBytes - removedBytes),
      'total-delete-files': '0',
      'total-position-deletes': '0',
      'total-equality-deletes': '0',
      ...carried,
      ...offsets,
      [SUMMARY.writer]: change.writer,
    };
    const snapshot = {
      'snapshot-id': snapshotId,
      ...(parentId !== undefined ? { 'parent-snapshot-id': parentId } : {}),
      'sequence-number': sequenceNumber,
      'timestamp-ms': Date.now(),
      'manifest-list': manifestList,
      summary,
      'schema-id': schema['schema-id'],
    };
    const requirements: Requirement[] = [
      { type: 'assert-table-uuid', uuid: base.loaded.metadata['table-uuid'] },
      { type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': parentId ?? null },
    ];
    const updates: Update[] = [];
    if (change.initialize) {
      requirements.push({ type: 'assert-default-spec-id', 'default-spec-id': metadata['default-spec-id'] });
      updates.push({ action: 'add-spec', spec }, { action: 'set-default-spec', 'spec-id': -1 });
    }
    if (schemaChanged) {
      requirements.push({ type: 'assert-current-schema-id', 'current-schema-id': base.schema['schema-id'] });
      updates.push({ action: 'add-schema', schema, 'last-column-id': lastColumnId }, { action: 'set-current-schema', 'schema-id': -1 });
    }
    if (change.properties) updates.push({ action: 'set-properties', updates: change.properties });
    updates.push({ action: 'add-snapshot', snapshot }, { action: 'set-snapshot-ref', 'ref-name': 'main', type: 'branch', 'snapshot-id': snapshotId });
    try {
      return stateOf(base.ref, await catalog.commitTable(base.ref.namespace, base.ref.name, requirements, updates));
    } catch (error) {
      // A retried request whose first attempt landed is refused (409), and an unknown outcome
      // is unknown: in both cases the table itself says whether this snapshot is in it.
      if (!(error instanceof CommitConflict || error instanceof CommitStateUnknown || (error as LakestreamError).retriable)) throw error;
      const now = await loadTableState(deps, base.ref).catch(() => undefined);
      if (now && (await landed(deps, now, snapshotId, change.added))) {
        written.length = 0;
        return now;
      }
      if (error instanceof CommitStateUnknown) {
        // It may land later: its manifests must stay (orphan removal takes them if it never does).
        written.length = 0;
        throw error;
      }
      throw error instanceof CommitConflict ? error : new CommitConflict(tableName(base.ref), errorMessage(error));
    }
  } catch (error) {
    // Nothing references these yet: a refused or failed attempt leaves no garbage behind.
    if (written.length) await store.delete(written.map((path) => keyOf(store, path))).catch(() => {});
    throw error;
  }
}
