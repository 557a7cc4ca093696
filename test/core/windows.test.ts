import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { addToTiles, checkDefinition, decodeTiles, encodeTiles, expireTiles, isLate, tileOf, windowAt, windowColumns, windowLabel, windowsAt, windowsSql, emittedWindowsSql, type Tiles, type WindowDefinition } from '../../core/windows.ts';

const MINUTE = 60_000;
const definition: WindowDefinition = { tileMs: 5 * MINUTE, windowsMs: [60 * MINUTE, 24 * 60 * MINUTE], allowedLatenessMs: 10 * MINUTE };

/** A small deterministic generator: the same events on every run. */
function events(seed: number, n: number): Array<{ time: number; value: number }> {
  let state = seed;
  const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const start = Date.UTC(2026, 11, 1);
  return Array.from({ length: n }, () => ({ time: start + Math.floor(next() * 2 * 24 * 60 * MINUTE), value: Math.round(next() * 10_000) / 100 }));
}

/** The definition's window straight from the events: those whose tile lies in the window's tiles. */
function bruteForce(all: Array<{ time: number; value: number }>, asOf: number, windowMs: number) {
  const last = Math.floor(asOf / definition.tileMs);
  const first = last - windowMs / definition.tileMs + 1;
  const inside = all.filter((e) => Math.floor(e.time / definition.tileMs) >= first && Math.floor(e.time / definition.tileMs) <= last).map((e) => e.value);
  return { count: inside.length, sum: inside.reduce((s, v) => s + v, 0), min: inside.length ? Math.min(...inside) : undefined, max: inside.length ? Math.max(...inside) : undefined };
}

test('windows: a window summed from tiles equals the same window computed from the events, in any arrival order', () => {
  const all = events(7, 2_000);
  const tiles: Tiles = new Map();
  // shuffled: tiles do not depend on the order records arrive in
  const shuffled = all.map((e, i) => ({ e, k: (i * 7919) % all.length })).sort((a, b) => a.k - b.k).map(({ e }) => e);
  for (const e of shuffled) addToTiles(tiles, e.time, e.value, definition);
  for (const asOf of events(11, 200).map((e) => e.time)) {
    const everyWindow = windowsAt(tiles, asOf, definition);
    for (const [index, windowMs] of definition.windowsMs.entries()) {
      const fromTiles = windowAt(tiles, asOf, windowMs, definition);
      assert.deepEqual(everyWindow[index], fromTiles, 'windowsAt gives each window windowAt gives');
      const expected = bruteForce(all, asOf, windowMs);
      assert.equal(fromTiles.count, expected.count, `count of ${windowMs / MINUTE} min as of ${new Date(asOf).toISOString()}`);
      assert.ok(Math.abs(fromTiles.sum - expected.sum) < 1e-6, `sum ${fromTiles.sum} vs ${expected.sum}`);
      assert.equal(fromTiles.min, expected.min);
      assert.equal(fromTiles.max, expected.max);
    }
  }
});

test("windows: the window's end is its tile's end, and an empty window has no min or max", () => {
  const tiles: Tiles = new Map();
  const tileStart = Date.UTC(2026, 11, 1, 10, 0);
  addToTiles(tiles, tileStart + 4 * MINUTE, 3, definition);
  // as of the tile's first minute, the event later in the same tile is in the window
  assert.equal(windowAt(tiles, tileStart, 60 * MINUTE, definition).count, 1);
  // an hour and one tile later it has left the 1 h window but not the 24 h one
  assert.deepEqual(windowAt(tiles, tileStart + 60 * MINUTE, 60 * MINUTE, definition), { count: 0, sum: 0, min: undefined, max: undefined });
  assert.equal(windowAt(tiles, tileStart + 60 * MINUTE, 24 * 60 * MINUTE, definition).count, 1);
  assert.equal(windowAt(tiles, tileStart + 55 * MINUTE, 60 * MINUTE, definition).count, 1, 'twelve tiles: the first still in');
});

test('windows: expiry by event time drops only tiles no window as of the newest event reaches, and changes no window from then on', () => {
  const all = events(3, 1_000);
  const tiles: Tiles = new Map();
  for (const e of all) addToTiles(tiles, e.time, e.value, definition);
  const newest = Math.max(...all.map((e) => e.time));
  const before = new Map([...tiles].map(([tile, aggregate]) => [tile, { ...aggregate }]));
  const dropped = expireTiles(tiles, newest, definition);
  assert.ok(dropped > 0, 'two days of events hold tiles older than a day');
  assert.ok([...tiles.keys()].every((tile) => tile > tileOf(newest, definition) - 24 * 12), 'no tile older than the longest window kept');
  for (const asOf of [newest, newest + 30 * MINUTE, newest + 23 * 60 * MINUTE]) {
    for (const windowMs of definition.windowsMs) assert.deepEqual(windowAt(tiles, asOf, windowMs, definition), windowAt(before, asOf, windowMs, definition));
  }
});

test("windows: lateness is decided against the partition's stream time, with the allowed lateness on time", () => {
  const streamTime = Date.UTC(2026, 11, 1, 12, 0);
  assert.equal(isLate(streamTime - 10 * MINUTE, streamTime, definition), false, 'exactly the allowed lateness is on time');
  assert.equal(isLate(streamTime - 10 * MINUTE - 1, streamTime, definition), true);
  assert.equal(isLate(streamTime + 5 * MINUTE, streamTime, definition), false, 'a record ahead of the stream is not late');
  assert.equal(isLate(0, undefined, definition), false, "a partition's first record is never late");
});

test('windows: tiles survive a changelog round trip; a definition that cannot be tiled is refused naming the field', () => {
  const tiles: Tiles = new Map();
  for (const e of events(5, 300)) addToTiles(tiles, e.time, e.value, definition);
  assert.deepEqual(decodeTiles(encodeTiles(tiles)), new Map([...tiles].sort(([a], [b]) => a - b)));
  assert.throws(() => decodeTiles([1, 2, 3]), /tiles: expected groups of 5 numbers/);
  assert.throws(() => checkDefinition({ ...definition, windowsMs: [7 * MINUTE] }, 'user_transaction_windows'), /user_transaction_windows: windowsMs must be whole multiples of tileMs \(300000\), got 420000/);
  assert.throws(() => checkDefinition({ ...definition, tileMs: 0 }, 'v'), /v: tileMs must be a positive/);
  assert.throws(() => checkDefinition({ ...definition, allowedLatenessMs: -1 }, 'v'), /allowedLatenessMs must be 0 or more/);
  assert.equal(checkDefinition(definition, 'v'), definition);
});

test('windows: DuckDB over the same records gives every window the stream state gives, late records left out by both', async () => {
  // 20 users on 3 partitions, two days, a quarter of the records delayed up to 30 min: they
  // arrive after records up to 30 min newer, so some are past the 10 min allowed
  const raw = events(17, 3_000);
  const delayed = raw.map((e, i) => ({ entity: i % 20, time: e.time, value: e.value, arrival: e.time + (i % 4 === 0 ? ((i * 7919) % 30) * MINUTE : (i * 13) % MINUTE) }));
  const nextOffset = [0, 0, 0];
  const records = [...delayed].sort((a, b) => a.arrival - b.arrival).map((r) => ({ ...r, partition: r.entity % 3, offset: nextOffset[r.entity % 3]!++ }));
  const byEntity = new Map<number, Tiles>();
  const streamTime = new Map<number, number>();
  let late = 0;
  for (const record of records) {
    if (isLate(record.time, streamTime.get(record.partition), definition)) {
      late++;
      continue;
    }
    streamTime.set(record.partition, Math.max(streamTime.get(record.partition) ?? record.time, record.time));
    const tiles = byEntity.get(record.entity) ?? new Map();
    byEntity.set(record.entity, tiles);
    addToTiles(tiles, record.time, record.value, definition);
  }
  assert.ok(late > 100 && late < records.length / 4, `some records are late (${late})`);
  // the lake keeps no arrival order: the SQL gets the rows shuffled, with their positions
  const shuffled = records.map((r, i) => ({ r, k: (i * 7919) % records.length })).sort((a, b) => a.k - b.k).map(({ r }) => r);
  const points = events(23, 300).map((e, i) => ({ entity: i % 20, asOf: e.time }));

  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run('CREATE TABLE events (entity INTEGER, event_time BIGINT, value DOUBLE, kafka_partition INTEGER, kafka_offset BIGINT)');
    await connection.run(`INSERT INTO events VALUES ${shuffled.map((r) => `(${r.entity}, ${r.time}, ${r.value}, ${r.partition}, ${r.offset})`).join(', ')}`);
    await connection.run('CREATE TABLE points (entity INTEGER, as_of BIGINT)');
    await connection.run(`INSERT INTO points VALUES ${points.map((p) => `(${p.entity}, ${p.asOf})`).join(', ')}`);
    const rows = (await connection.runAndReadAll(windowsSql(definition, 'amount', 'SELECT * FROM events', 'SELECT * FROM points'))).getRowObjectsJS() as Array<Record<string, unknown>>;
    assert.equal(rows.length, new Set(points.map((p) => `${p.entity}/${p.asOf}`)).size, 'one row per point');
    let compared = 0;
    for (const row of rows) {
      const tiles = byEntity.get(Number(row.entity)) ?? new Map();
      for (const column of windowColumns(definition, 'amount')) {
        const expected = windowAt(tiles, Number(row.as_of), column.window, definition)[column.aggregate];
        const actual = row[column.name] === null ? undefined : Number(row[column.name]);
        if (column.aggregate === 'sum') assert.ok(Math.abs((actual ?? 0) - (expected ?? 0)) < 1e-6, `${column.name} of ${row.entity} as of ${row.as_of}: ${actual} vs ${expected}`);
        else assert.equal(actual, expected, `${column.name} of ${row.entity} as of ${row.as_of}`);
        compared++;
      }
    }
    assert.equal(compared, rows.length * 8);
    assert.ok(rows.some((row) => Number(row.count_1h) > 0) && rows.some((row) => Number(row.count_1h) === 0), 'both empty and filled 1 h windows were compared');
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
  assert.deepEqual([MINUTE * 30, 3_600_000, 86_400_000, 7 * 86_400_000].map(windowLabel), ['30m', '1h', '24h', '7d']);
});

/**
 * The stream job's logic over records in arrival order, against DuckDB's recomputation from the
 * archive (stored shuffled) with their Kafka positions.
 */
async function compareEmitted(definition: WindowDefinition, seed: number): Promise<number> {
  // 12 users on 2 partitions; a fifth of the records up to 25 min behind their partition's front
  const raw = events(seed, 2_000);
  const byArrival = raw
    .map((e, i) => ({ entity: i % 12, time: e.time, value: e.value, arrival: e.time + (i % 5 === 0 ? ((i * 7919) % 25) * MINUTE : 0) }))
    .sort((a, b) => a.arrival - b.arrival);
  const nextOffset = [0, 0];
  const records = byArrival.map((r) => ({ ...r, partition: r.entity % 2, offset: nextOffset[r.entity % 2]!++ }));
  // the stream job's logic: per partition a stream time, per entity tiles, the newest and a count
  const streamTime = new Map<number, number>();
  const states = new Map<string, { tiles: Tiles; newest: number; events: number }>();
  const emitted = new Map<string, Record<string, number | undefined>>();
  for (const record of records) {
    if (isLate(record.time, streamTime.get(record.partition), definition)) continue;
    streamTime.set(record.partition, Math.max(streamTime.get(record.partition) ?? record.time, record.time));
    const key = `${record.entity}/${record.partition}`;
    const state = states.get(key) ?? { tiles: new Map(), newest: record.time, events: 0 };
    states.set(key, state);
    addToTiles(state.tiles, record.time, record.value, definition);
    state.events++;
    if (record.time > state.newest) {
      state.newest = record.time;
      expireTiles(state.tiles, record.time, definition);
    }
    const aggregates = windowsAt(state.tiles, state.newest, definition);
    const row: Record<string, number | undefined> = { as_of: state.newest, events: state.events };
    for (const column of windowColumns(definition, 'amount')) row[column.name] = aggregates[column.index]![column.aggregate];
    emitted.set(`${record.partition}/${record.offset}`, row);
  }
  assert.ok(emitted.size < records.length - 50 && emitted.size > records.length / 2, `some records are late (${records.length - emitted.size})`);

  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run('CREATE TABLE archive (entity INTEGER, event_time BIGINT, value DOUBLE, kafka_partition INTEGER, kafka_offset BIGINT)');
    const shuffled = records.map((r, i) => ({ r, k: (i * 104729) % records.length })).sort((a, b) => a.k - b.k).map(({ r }) => r);
    await connection.run(`INSERT INTO archive VALUES ${shuffled.map((r) => `(${r.entity}, ${r.time}, ${r.value}, ${r.partition}, ${r.offset})`).join(', ')}`);
    const rows = (await connection.runAndReadAll(emittedWindowsSql(definition, 'amount', 'SELECT * FROM archive'))).getRowObjectsJS() as Array<Record<string, unknown>>;
    assert.equal(rows.length, emitted.size, 'one row per record on time');
    for (const row of rows) {
      const expected = emitted.get(`${row.kafka_partition}/${row.kafka_offset}`);
      assert.ok(expected, `a row for ${row.kafka_partition}/${row.kafka_offset}, which the stream called late`);
      assert.equal(Number(row.as_of), expected.as_of);
      assert.equal(Number(row.events), expected.events);
      for (const column of windowColumns(definition, 'amount')) {
        const actual = row[column.name] === null ? undefined : Number(row[column.name]);
        if (column.aggregate === 'sum') assert.ok(Math.abs(actual! - expected[column.name]!) < 1e-6, `${column.name} at ${row.kafka_partition}/${row.kafka_offset}: ${actual} vs ${expected[column.name]}`);
        else assert.equal(actual, expected[column.name], `${column.name} at ${row.kafka_partition}/${row.kafka_offset}`);
      }
    }
    const sampled = (await connection.runAndReadAll(emittedWindowsSql(definition, 'amount', 'SELECT * FROM archive', 'entity IN (3, 4)'))).getRowObjectsJS() as Array<Record<string, unknown>>;
    // sums to rounding: DuckDB adds a tile's values in whatever order its threads meet them
    const rounded = (list: Array<Record<string, unknown>>) => list.map((row) => Object.fromEntries(Object.entries(row).map(([key, value]) => [key, key.includes('_sum_') ? Number(Number(value).toFixed(6)) : value])));
    assert.deepEqual(rounded(sampled), rounded(rows.filter((row) => row.entity === 3 || row.entity === 4)), 'a sample is computed as the whole: lateness still sees every record of the partition');
    return rows.length;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

test('windows: the rows the stream emits, one per record on time, are recomputed by DuckDB from the archive with Kafka positions, whatever the order rows are stored in', async () => {
  assert.ok((await compareEmitted(definition, 29)) > 1_000);
});

test('windows: the recomputation holds for windows no longer than the lateness, for no lateness, and for a lateness not a whole number of tiles', async () => {
  // the SQL splits a window at the lateness: each side of that split, and the edge cases of it
  await compareEmitted({ tileMs: 5 * MINUTE, windowsMs: [10 * MINUTE, 15 * MINUTE, 60 * MINUTE], allowedLatenessMs: 10 * MINUTE }, 31);
  await compareEmitted({ tileMs: 5 * MINUTE, windowsMs: [5 * MINUTE, 60 * MINUTE], allowedLatenessMs: 0 }, 37);
  await compareEmitted({ tileMs: 5 * MINUTE, windowsMs: [30 * MINUTE, 24 * 60 * MINUTE], allowedLatenessMs: 7 * MINUTE }, 41);
});
