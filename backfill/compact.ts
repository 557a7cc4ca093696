import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../core/config.ts';
import { openDuckdb } from '../core/duckdb.ts';
import { createObjectStore, type ObjectStore } from '../core/object-store.ts';
import { LakestreamError } from '../core/errors.ts';
import { createS3 } from '../core/s3.ts';
import { catalog } from '../core/catalog.ts';
import { parseSinkFileKey, parseSinkPartitionState, sinkFileSql, sinkStateKey } from '../core/lake-layout.ts';

/**
 * Merges the small files of a lake table's hour partitions into one file per hour.
 *
 * Safe beside a running sink: a sink file is merged only once its whole offset range is committed
 * in the sink's partition state (a torn flush's files may still be deleted by its recovery, so
 * they are left alone), and files the sink adds during the run are simply not part of it.
 *
 * Idempotent and crash-safe, per hour: a manifest names the inputs and the output (named from a
 * hash of the inputs) before anything is written; the output is written, the inputs deleted, the
 * manifest marked done. A run that finds a manifest still `writing` finishes it if the output
 * exists (deleting the inputs) or drops it if not. A reader may see inputs and output together
 * between the upload and the deletes (rows twice) — seconds, once per hour partition.
 */
export interface CompactionTarget {
  /** Key prefix of the table, e.g. `transactions`. */
  table: string;
  /** Where the sink that writes the table keeps its partition state, e.g. `_lakestream/sinks/transactions-job-backup`. */
  sinkState: string;
  manifestRoot: string;
}

export interface HourResult {
  dt: string;
  hour: string;
  inputs: number;
  rows: number;
  output?: string;
  skipped?: string;
}

interface Manifest {
  status: 'writing' | 'done';
  inputs: string[];
  output: string;
}

/** Where a lake table of a (namespaced) pipeline lives, and which sink's state governs it. */
export function compactionTarget(view: string, namespace: string): CompactionTarget {
  const resolved = catalog(namespace);
  const tables = Object.values(resolved.tables);
  const table = tables.find((t) => t.view === view);
  if (!table) throw new LakestreamError('USAGE', `--table must be one of ${tables.map((t) => t.view).join(', ')}, got ${JSON.stringify(view)}`);
  return { table: table.path, sinkState: table.sinkStateRoot, manifestRoot: resolved.roots.compactionManifests };
}

export async function compactDay(
  config: Config,
  target: CompactionTarget,
  dt: string,
  options: { includeOpenHour?: boolean; hour?: string; now?: Date } = {},
): Promise<HourResult[]> {
  const s3 = createS3(config);
  const store: ObjectStore = createObjectStore(s3, config.LAKE_BUCKET);
  const work = mkdtempSync(join(tmpdir(), 'lakestream-compact-'));
  const duck = await openDuckdb(config, { memory_limit: '1GB', temp_directory: join(work, 'spill') });
  const now = options.now ?? new Date();
  const openDt = now.toISOString().slice(0, 10);
  const openHour = now.toISOString().slice(11, 13);
  const committed = new Map<number, number>();
  const committedThrough = async (partition: number) => {
    if (!committed.has(partition)) {
      const key = sinkStateKey(target.sinkState, partition);
      const state = await store.getJson<unknown>(key);
      committed.set(partition, state ? parseSinkPartitionState(state.value, key).committedThrough : -1);
    }
    return committed.get(partition)!;
  };
  const results: HourResult[] = [];
  try {
    const keys = (await store.list(`${target.table}/dt=${dt}/`)).filter((key) => key.endsWith('.parquet'));
    const hours = [...new Set(keys.map((key) => /\/hour=(\d{2})\//.exec(key)?.[1]).filter((h): h is string => !!h))].sort();
    for (const hour of hours) {
      if (options.hour && hour !== options.hour) continue;
      if (dt === openDt && hour === openHour && !options.includeOpenHour) {
        results.push({ dt, hour, inputs: 0, rows: 0, skipped: 'open hour' });
        continue;
      }
      const manifestKey = `${target.manifestRoot}/${target.table}/dt=${dt}/hour=${hour}.json`;
      const previous = await store.getJson<Manifest>(manifestKey);
      let hourKeys = keys.filter((key) => key.includes(`/hour=${hour}/`));
      if (previous?.value.status === 'writing') {
        if (hourKeys.includes(previous.value.output)) {
          await store.delete(previous.value.inputs);
          hourKeys = hourKeys.filter((key) => !previous.value.inputs.includes(key));
        } else {
          await store.delete([manifestKey]);
        }
      }
      const inputs: string[] = [];
      for (const key of hourKeys) {
        const file = parseSinkFileKey(key);
        if (file && file.last > (await committedThrough(file.partition))) continue;
        inputs.push(key);
      }
      if (inputs.length < 2) {
        results.push({ dt, hour, inputs: inputs.length, rows: 0, skipped: inputs.length ? 'already one file' : 'no settled files' });
        continue;
      }
      inputs.sort();
      const digest = createHash('sha256').update(inputs.join('\n')).digest('hex').slice(0, 16);
      const output = `${target.table}/dt=${dt}/hour=${hour}/compacted-${digest}.parquet`;
      await store.putJson(manifestKey, { status: 'writing', inputs, output } satisfies Manifest);
      const local = join(work, `${dt}-${hour}.parquet`);
      const sinkFile = sinkFileSql('filename');
      const urls = inputs.map((key) => `'s3://${config.LAKE_BUCKET}/${key}'`).join(', ');
      // Rows keep their archive order (Kafka partition, offset), which backfill uses to break ties.
      await duck.connection.run(`COPY (
        SELECT * EXCLUDE (filename, file_row_number)
        FROM read_parquet([${urls}], union_by_name = true, filename = true, file_row_number = true)
        ORDER BY ${sinkFile.partition} NULLS FIRST, ${sinkFile.firstOffset} NULLS FIRST,
                 filename, file_row_number
      ) TO '${local}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)`);
      const rows = Number(((await duck.connection.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet('${local}')`)).getRowObjectsJS()[0] as { n: bigint }).n);
      await store.put(output, readFileSync(local));
      rmSync(local, { force: true });
      await store.delete(inputs);
      await store.putJson(manifestKey, { status: 'done', inputs, output } satisfies Manifest);
      results.push({ dt, hour, inputs: inputs.length, rows, output });
    }
  } finally {
    duck.close();
    s3.destroy();
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}
