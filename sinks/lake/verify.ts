import type { Admin } from '@platformatic/kafka';
import type { ResolvedTable } from '../../platform/catalog.ts';
import { keyOf, liveFiles, loadTableState, type TableDeps } from '../../core/iceberg/table.ts';

/**
 * What `pnpm run lake -- verify` checks of one lake table against its topic: the offsets its
 * current snapshot says it archived, next to each partition's log start and end, and whether
 * every file the snapshot references exists. Errors mean rows are missing from the table (or
 * the table does not belong to the topic any more); infos are states worth knowing.
 */
export interface Finding {
  table: string;
  level: 'error' | 'info';
  partition?: number;
  message: string;
}

export interface PartitionLog {
  partition: number;
  logStart: number;
  logEnd: number;
}

/** The offset findings for one table: pure, so each rule has a unit test. */
export function offsetFindings(table: string, logs: PartitionLog[], archived: { topicId: string; next: Record<number, number> } | undefined, topicId: string): Finding[] {
  const findings: Finding[] = [];
  if (archived?.topicId && archived.topicId !== topicId) {
    findings.push({ table, level: 'error', message: `the table's offsets belong to topic id ${archived.topicId}; the topic now has id ${topicId} (deleted and recreated: see pnpm run sink:reset)` });
    return findings;
  }
  for (const { partition, logStart, logEnd } of logs) {
    const next = archived?.next[partition];
    if (next === undefined) {
      if (logEnd > logStart) findings.push({ table, level: 'info', partition, message: `nothing archived yet; ${logEnd - logStart} record(s) in the log from offset ${logStart}` });
      continue;
    }
    if (next > logEnd) {
      findings.push({ table, level: 'error', partition, message: `the table holds offsets up to ${next - 1}, beyond the log's end ${logEnd} (topic truncated or recreated)` });
    } else if (next < logStart) {
      findings.push({
        table,
        level: 'error',
        partition,
        message: `retention outran the sink: offsets ${next}..${logStart - 1} (${logStart - next} offset(s): records, and their transactions' markers) were deleted from the topic before the table archived them`,
      });
    } else if (logEnd > next) {
      findings.push({ table, level: 'info', partition, message: `lag ${logEnd - next} offset(s): archived up to ${next - 1}, the log ends at ${logEnd} (a transaction's commit marker takes one too)` });
    }
  }
  return findings;
}

async function partitionLogs(admin: Admin, topic: string): Promise<PartitionLog[] | undefined> {
  const metadata = await admin.metadata({ topics: [topic], forceUpdate: true }).catch(() => undefined);
  const found = metadata?.topics.get(topic);
  if (!found) return undefined;
  const request = (timestamp: bigint) => ({ topics: [{ name: topic, partitions: Array.from({ length: found.partitionsCount }, (_, partitionIndex) => ({ partitionIndex, timestamp })) }] });
  const [latest, earliest] = await Promise.all([admin.listOffsets(request(-1n)), admin.listOffsets(request(-2n))]);
  const start = new Map(earliest[0]!.partitions.map((p) => [p.partitionIndex, Number(p.offset)]));
  return latest[0]!.partitions.map((p) => ({ partition: p.partitionIndex, logStart: start.get(p.partitionIndex) ?? 0, logEnd: Number(p.offset) })).sort((a, b) => a.partition - b.partition);
}

/** Every check of one table. */
export async function verifyTable(deps: TableDeps, admin: Admin, table: ResolvedTable): Promise<Finding[]> {
  const id = `${table.iceberg.namespace.join('.')}.${table.iceberg.name}`;
  const state = await loadTableState(deps, table.iceberg);
  if (!state) return [{ table: id, level: 'info', message: 'no Iceberg table yet (pnpm run infra:apply creates it)' }];
  const findings: Finding[] = [];
  const logs = await partitionLogs(admin, table.topic);
  if (!logs) findings.push({ table: id, level: state.offsets ? 'error' : 'info', message: `topic ${table.topic} does not exist` });
  else {
    const topicId = (await admin.metadata({ topics: [table.topic] })).topics.get(table.topic)!.id;
    findings.push(...offsetFindings(id, logs, state.offsets, topicId));
  }
  const live = await liveFiles(deps, state);
  const location = state.loaded.metadata.location.replace(/\/+$/, '');
  const stored = new Set(await deps.store.list(`${keyOf(deps.store, location)}/data/`));
  const missing = live.filter((entry) => !stored.has(keyOf(deps.store, entry.file.path)));
  for (const entry of missing.slice(0, 5)) findings.push({ table: id, level: 'error', message: `file ${entry.file.path} (${entry.file.records} rows) is referenced but missing from the store` });
  if (missing.length > 5) findings.push({ table: id, level: 'error', message: `and ${missing.length - 5} more missing files` });
  const referenced = new Set(live.map((entry) => keyOf(deps.store, entry.file.path)));
  const orphans = [...stored].filter((key) => !referenced.has(key));
  const rows = live.reduce((sum, entry) => sum + entry.file.records, 0n);
  findings.push({
    table: id,
    level: 'info',
    message: `snapshot ${state.snapshot?.['snapshot-id'] ?? 'none'}: ${live.length} file(s), ${rows} row(s)${orphans.length ? `; ${orphans.length} unreferenced file(s) (invisible to readers; orphan removal deletes them)` : ''}`,
  });
  return findings;
}
