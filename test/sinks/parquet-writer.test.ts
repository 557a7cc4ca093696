import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Column } from '../../core/lake-layout.ts';
import { ParquetWriter, type StagedRows } from '../../sinks/lake/parquet.ts';

const columns: Column[] = [
  { name: 'user_id', sqlType: 'INTEGER', nullable: false },
  { name: 'ts', sqlType: 'BIGINT', nullable: false },
  { name: 'amount', sqlType: 'DOUBLE', nullable: false },
  { name: 'currency', sqlType: 'VARCHAR', nullable: true },
];
const fieldIds = { user_id: 1, ts: 2, amount: 3, currency: 4, dt: 5, hour: 6 };

test('parquet writer: rows staged in DuckDB while other files are written come out whole, each file its own rows with field ids', { timeout: 120_000 }, async (t) => {
  const writer = await ParquetWriter.open();
  const dir = mkdtempSync(join(tmpdir(), 'lakestream-parquet-test-'));
  t.after(() => {
    writer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // 12 files of 1,000 to 9,000 rows filled in turns, each begun 400 rows after the previous one,
  // several written while the rest are still being staged (as a sink's partitions flush while
  // others buffer, and new event hours begin)
  const sizes = Array.from({ length: 12 }, (_, i) => 1_000 + ((i * 3_700) % 8_000));
  const starts = sizes.map((_, i) => i * 400);
  const stages: Array<StagedRows | undefined> = sizes.map(() => undefined);
  const written: Array<Promise<Buffer[]>> = [];
  for (let step = 0; step < Math.max(...sizes.map((size, i) => size + starts[i]!)); step++) {
    stages.forEach((_, file) => {
      const row = step - starts[file]!;
      if (row < 0 || row >= sizes[file]!) return;
      const stage = (stages[file] ??= writer.stage(columns));
      const values = stage.values;
      values[0]!.push(file);
      values[1]!.push(1_733_000_000_000 + row);
      values[2]!.push(row / 4);
      values[3]!.push(row % 10 === 0 ? null : `C${row % 7}`);
      stage.added();
    });
    if (step % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
    const finished = sizes.flatMap((size, file) => (size + starts[file]! === step + 1 ? [file] : []));
    if (finished.length) written.push(writer.writeFiles(columns, finished.map((file) => ({ stage: stages[file]!, dt: '2026-12-07', hour: String(file).padStart(2, '0') })), fieldIds));
  }
  const files = (await Promise.all(written)).flat();
  assert.equal(files.length, sizes.length, 'one file per staged part');

  const duckdb = await DuckDBInstance.create(':memory:');
  const connection = await duckdb.connect();
  t.after(() => duckdb.closeSync());
  const seen = new Map<number, { rows: number; sum: number; nulls: number; first: bigint; hour: number }>();
  for (const [index, body] of files.entries()) {
    const path = join(dir, `${index}.parquet`);
    writeFileSync(path, body);
    const reader = await connection.runAndReadAll(
      `SELECT min(user_id), max(user_id), count(*), sum(amount), count(*) - count(currency), min(ts), min(hour) FROM read_parquet('${path}')`,
    );
    const [low, high, rows, sum, nulls, first, hour] = reader.getRows()[0]!;
    assert.equal(low, high, 'a file holds the rows of one part only');
    seen.set(Number(low), { rows: Number(rows), sum: Number(sum), nulls: Number(nulls), first: first as bigint, hour: Number(hour) });
    const ids = await connection.runAndReadAll(`SELECT name, field_id FROM parquet_schema('${path}') WHERE field_id IS NOT NULL ORDER BY field_id`);
    assert.deepEqual(ids.getRows().map(([name, id]) => [name, Number(id)]), Object.entries(fieldIds), 'each column carries its field id');
  }
  sizes.forEach((size, file) => {
    const expected = { rows: size, sum: (size * (size - 1)) / 8, nulls: Math.ceil(size / 10), first: 1_733_000_000_000n, hour: file };
    assert.deepEqual(seen.get(file), expected, `file ${file}`);
  });
});

test('parquet writer: discarded staged rows are freed and never written, whatever the order of creation and discard', { timeout: 60_000 }, async (t) => {
  const writer = await ParquetWriter.open();
  t.after(() => writer.close());
  const early = writer.stage(columns);
  await early.discard(); // before its table existed
  const late = writer.stage(columns);
  for (let row = 0; row < 5_000; row++) {
    late.values[0]!.push(row);
    late.values[1]!.push(row);
    late.values[2]!.push(row);
    late.values[3]!.push('X');
    late.added();
  }
  await late.ready;
  await late.discard();
  await assert.rejects(writer.writeFiles(columns, [{ stage: late, dt: '2026-12-07', hour: '00' }], fieldIds), /discarded/);
  // the writer goes on
  const kept = writer.stage(columns);
  kept.values[0]!.push(1);
  kept.values[1]!.push(2);
  kept.values[2]!.push(3);
  kept.values[3]!.push('Y');
  kept.added();
  const [file] = await writer.writeFiles(columns, [{ stage: kept, dt: '2026-12-07', hour: '01' }], fieldIds);
  assert.ok(file!.length > 0);
});
