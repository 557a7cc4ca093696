import { LakestreamError } from './errors.ts';

/**
 * The arithmetic of windowed features (docs/decisions/0020), shared by the stream job and the
 * backfill's SQL so both give the same number: events are summed into tiles, a window is the sum
 * of its tiles, and its end is its tile's end.
 */
export interface WindowDefinition {
  /** Tile width: a window's resolution. */
  tileMs: number;
  /** The windows served, each a whole number of tiles. */
  windowsMs: number[];
  /** A record whose event time is older than its partition's stream time by more than this is late. */
  allowedLatenessMs: number;
}

export interface WindowAggregate {
  count: number;
  sum: number;
  /** Undefined when the window holds no event. */
  min: number | undefined;
  max: number | undefined;
}

/** An entity's live tiles, by tile number (event time divided by the tile width). */
export type Tiles = Map<number, { count: number; sum: number; min: number; max: number }>;

/** Refuses a definition no window can be computed from, naming the field. */
export function checkDefinition(definition: WindowDefinition, name: string): WindowDefinition {
  const refuse = (field: string, problem: string) => {
    throw new LakestreamError('USAGE', `windowed feature ${name}: ${field} ${problem}`);
  };
  if (!Number.isInteger(definition.tileMs) || definition.tileMs <= 0) refuse('tileMs', `must be a positive whole number of ms, got ${definition.tileMs}`);
  if (!definition.windowsMs.length) refuse('windowsMs', 'must name at least one window');
  for (const window of definition.windowsMs) {
    if (!Number.isInteger(window) || window <= 0 || window % definition.tileMs !== 0) refuse('windowsMs', `must be whole multiples of tileMs (${definition.tileMs}), got ${window}`);
  }
  if (!Number.isFinite(definition.allowedLatenessMs) || definition.allowedLatenessMs < 0) refuse('allowedLatenessMs', `must be 0 or more, got ${definition.allowedLatenessMs}`);
  return definition;
}

export const tileOf = (timeMs: number, definition: WindowDefinition): number => Math.floor(timeMs / definition.tileMs);

/**
 * Lateness by stream time, as Kafka Streams' grace period: a record is late when its event time
 * is older than the newest event time of its input partition so far (before it) by more than the
 * allowed lateness. The stream keeps that time per partition with its state; a backfill over the
 * lake replays it from each row's Kafka partition and offset (`windowsSql`), so both leave out the
 * same records whatever the restarts and replays (docs/decisions/0020).
 */
export function isLate(eventTimeMs: number, streamTimeMs: number | undefined, definition: WindowDefinition): boolean {
  return streamTimeMs !== undefined && eventTimeMs < streamTimeMs - definition.allowedLatenessMs;
}

export function addToTiles(tiles: Tiles, eventTimeMs: number, value: number, definition: WindowDefinition): void {
  const tile = tileOf(eventTimeMs, definition);
  const current = tiles.get(tile);
  if (!current) tiles.set(tile, { count: 1, sum: value, min: value, max: value });
  else {
    current.count++;
    current.sum += value;
    if (value < current.min) current.min = value;
    if (value > current.max) current.max = value;
  }
}

/** The window of `windowMs` as of `asOfMs`: the tiles from `windowMs` back up to the end of the tile of `asOfMs`. */
export function windowAt(tiles: Tiles, asOfMs: number, windowMs: number, definition: WindowDefinition): WindowAggregate {
  const last = tileOf(asOfMs, definition);
  const first = last - windowMs / definition.tileMs + 1;
  const result: WindowAggregate = { count: 0, sum: 0, min: undefined, max: undefined };
  for (const [tile, aggregate] of tiles) {
    if (tile < first || tile > last) continue;
    result.count += aggregate.count;
    result.sum += aggregate.sum;
    if (result.min === undefined || aggregate.min < result.min) result.min = aggregate.min;
    if (result.max === undefined || aggregate.max > result.max) result.max = aggregate.max;
  }
  return result;
}

/** Every window of the definition as of `asOfMs`, in its order, in one pass over the tiles. */
export function windowsAt(tiles: Tiles, asOfMs: number, definition: WindowDefinition): WindowAggregate[] {
  const last = tileOf(asOfMs, definition);
  const firsts = definition.windowsMs.map((window) => last - window / definition.tileMs + 1);
  const results: WindowAggregate[] = firsts.map(() => ({ count: 0, sum: 0, min: undefined, max: undefined }));
  for (const [tile, aggregate] of tiles) {
    if (tile > last) continue;
    for (let i = 0; i < firsts.length; i++) {
      if (tile < firsts[i]!) continue;
      const result = results[i]!;
      result.count += aggregate.count;
      result.sum += aggregate.sum;
      if (result.min === undefined || aggregate.min < result.min) result.min = aggregate.min;
      if (result.max === undefined || aggregate.max > result.max) result.max = aggregate.max;
    }
  }
  return results;
}

/**
 * Drops the tiles no window as of `newestMs` or later can hold. Returns how many it dropped. A
 * late-but-allowed record older than the entity's newest is still counted: its tile is kept as
 * long as the longest window as of the newest event reaches it.
 */
export function expireTiles(tiles: Tiles, newestMs: number, definition: WindowDefinition): number {
  const oldestKept = tileOf(newestMs, definition) - Math.max(...definition.windowsMs) / definition.tileMs + 1;
  let dropped = 0;
  for (const tile of tiles.keys()) {
    if (tile < oldestKept) {
      tiles.delete(tile);
      dropped++;
    }
  }
  return dropped;
}

/** Tiles as a flat array for a changelog record: [tile, count, sum, min, max, …]. */
export function encodeTiles(tiles: Tiles): number[] {
  const flat: number[] = [];
  for (const [tile, { count, sum, min, max }] of [...tiles].sort(([a], [b]) => a - b)) flat.push(tile, count, sum, min, max);
  return flat;
}

export function decodeTiles(flat: number[]): Tiles {
  if (flat.length % 5 !== 0) throw new LakestreamError('RECORD_INVALID', `tiles: expected groups of 5 numbers (tile, count, sum, min, max), got ${flat.length} numbers`);
  const tiles: Tiles = new Map();
  for (let i = 0; i < flat.length; i += 5) tiles.set(flat[i]!, { count: flat[i + 1]!, sum: flat[i + 2]!, min: flat[i + 3]!, max: flat[i + 4]! });
  return tiles;
}

/** A window's name in feature names: `1h`, `24h`, `7d`, `30m`. */
export function windowLabel(windowMs: number): string {
  const DAY = 86_400_000;
  const HOUR = 3_600_000;
  if (windowMs % DAY === 0 && windowMs >= 7 * DAY) return `${windowMs / DAY}d`;
  if (windowMs % HOUR === 0) return `${windowMs / HOUR}h`;
  return `${windowMs / 60_000}m`;
}

/** The feature columns of a definition over `value`, in a fixed order: count, sum, min, max per window. */
export function windowColumns(definition: WindowDefinition, value: string): Array<{ name: string; window: number; index: number; aggregate: keyof WindowAggregate }> {
  return definition.windowsMs.flatMap((window, index) => {
    const label = windowLabel(window);
    return [
      { name: `count_${label}`, window, index, aggregate: 'count' as const },
      { name: `${value}_sum_${label}`, window, index, aggregate: 'sum' as const },
      { name: `${value}_min_${label}`, window, index, aggregate: 'min' as const },
      { name: `${value}_max_${label}`, window, index, aggregate: 'max' as const },
    ];
  });
}

/**
 * The same windows in DuckDB SQL, for the backfill and the consistency check: `events` is a query
 * with columns (entity, event_time, value, kafka_partition, kafka_offset), `points` one with
 * (entity, as_of), times in epoch ms. A record is late as `isLate` says, its partition's stream
 * time being the newest event time at a lower offset (a late record never raises it, so the
 * running max over every earlier row is the stream's); late records are left out, as the stream
 * leaves them. Each point gets one row with `windowColumns`' columns (a window without events:
 * count 0, sum 0, min/max NULL).
 */
export function windowsSql(definition: WindowDefinition, value: string, events: string, points: string): string {
  const tile = definition.tileMs;
  const longest = Math.max(...definition.windowsMs) / tile;
  const inWindow = (window: number) => `t.tile > p.as_of // ${tile} - ${window / tile}`;
  const aggregates = windowColumns(definition, value).map(({ name, window, aggregate }) => {
    const column = { count: 'c', sum: 's', min: 'mn', max: 'mx' }[aggregate];
    const fn = aggregate === 'count' || aggregate === 'sum' ? 'sum' : aggregate;
    const expression = `${fn}(t.${column}) FILTER (WHERE ${inWindow(window)})`;
    return `${aggregate === 'count' || aggregate === 'sum' ? `coalesce(${expression}, 0)` : expression}${aggregate === 'count' ? '::BIGINT' : ''} AS "${name}"`;
  });
  return `WITH valid AS (
      SELECT entity, event_time // ${tile} AS tile, value FROM (
        SELECT *, max(event_time) OVER (PARTITION BY kafka_partition ORDER BY kafka_offset ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS stream_time FROM (${events})
      ) WHERE stream_time IS NULL OR event_time >= stream_time - ${definition.allowedLatenessMs}
    ), tiles AS (
      SELECT entity, tile, count(*) AS c, sum(value) AS s, min(value) AS mn, max(value) AS mx FROM valid GROUP BY entity, tile
    )
    SELECT p.entity, p.as_of, ${aggregates.join(', ')}
    FROM (${points}) AS p LEFT JOIN tiles AS t
      ON t.entity = p.entity AND t.tile <= p.as_of // ${tile} AND t.tile > p.as_of // ${tile} - ${longest}
    GROUP BY p.entity, p.as_of
    ORDER BY p.entity, p.as_of`;
}

/**
 * The rows the stream emits, one per record on time, recomputed in DuckDB SQL: `events` is a
 * query with (entity, event_time, value, kafka_partition, kafka_offset) over the whole archive
 * (lateness depends on every earlier record of a partition, whoever's), `entities` an optional
 * SQL condition on `entity` that narrows the rows computed (a sample). A row's windows are those
 * of the entity's records on time up to its offset, as of the newest of them: what the stream's
 * state held right after the record, whatever the arrival order. Columns: entity,
 * kafka_partition, kafka_offset, as_of, events, then `windowColumns`.
 *
 * Linear in the archive, so the backfill runs it over everything: a window as of tile T splits
 * into its old tiles, up to T - R, and its R recent ones. A record on time after the row has an
 * event time at least the row's as-of minus the lateness (stream time only grows), so it lands
 * in the recent tiles: the old tiles hold only records up to the row's offset, and come from
 * one per-tile window function over the entity's tiles (a RANGE frame). The recent tiles are
 * joined record by record with the offset condition, a join bounded by an entity's records in R
 * tiles (`R` = the lateness in tiles, rounded up, plus the row's own).
 */
export function emittedWindowsSql(definition: WindowDefinition, value: string, events: string, entities?: string): string {
  const tile = definition.tileMs;
  const recent = Math.ceil(definition.allowedLatenessMs / tile) + 1;
  const columns = windowColumns(definition, value);
  const id = (index: number, aggregate: string) => `${aggregate}_${index}`;
  const combine = { count: 'sum', sum: 'sum', min: 'min', max: 'max' } as const;
  const perTile = { count: 'c', sum: 's', min: 'mn', max: 'mx' } as const;
  // the old part of each window over the entity's tiles, as of each of them
  const old = columns.flatMap(({ window, index, aggregate }) => {
    const tiles = window / tile;
    if (tiles <= recent) return [];
    return [`${combine[aggregate]}(${perTile[aggregate]}) OVER (PARTITION BY entity, kafka_partition ORDER BY tile RANGE BETWEEN ${tiles - 1} PRECEDING AND ${recent} PRECEDING) AS ${id(index, aggregate)}`];
  });
  const recentPart = columns.map(({ window, index, aggregate }) => {
    const inWindow = `e.tile > r.as_of // ${tile} - ${window / tile}`;
    const expression = aggregate === 'count' ? `count(*) FILTER (WHERE ${inWindow})` : `${aggregate}(e.value) FILTER (WHERE ${inWindow})`;
    return `${expression} AS ${id(index, aggregate)}`;
  });
  const result = columns.map(({ name, window, index, aggregate }) => {
    const parts = window / tile > recent ? [`o.${id(index, aggregate)}`, `r.${id(index, aggregate)}`] : [`r.${id(index, aggregate)}`];
    if (aggregate === 'count' || aggregate === 'sum') {
      return `(${parts.map((part) => `coalesce(${part}, 0)`).join(' + ')})${aggregate === 'count' ? '::BIGINT' : '::DOUBLE'} AS "${name}"`;
    }
    // least/greatest skip NULLs: an empty part leaves the other's value
    return `${parts.length > 1 ? `${aggregate === 'min' ? 'least' : 'greatest'}(${parts.join(', ')})` : parts[0]} AS "${name}"`;
  });
  return `WITH ordered AS (
      SELECT *, max(event_time) OVER (PARTITION BY kafka_partition ORDER BY kafka_offset ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS stream_time FROM (${events})
    ), on_time AS (
      SELECT entity, kafka_partition, kafka_offset, event_time, event_time // ${tile} AS tile, value FROM ordered
      WHERE (stream_time IS NULL OR event_time >= stream_time - ${definition.allowedLatenessMs})${entities ? ` AND (${entities})` : ''}
    ), points AS (
      SELECT entity, kafka_partition, kafka_offset, max(event_time) OVER prefix AS as_of, count(*) OVER prefix AS events
      FROM on_time WINDOW prefix AS (PARTITION BY entity, kafka_partition ORDER BY kafka_offset ROWS UNBOUNDED PRECEDING)
    ), recent AS (
      SELECT r.entity, r.kafka_partition, r.kafka_offset, ${recentPart.join(', ')}
      FROM (SELECT *, as_of // ${tile} - k AS tile FROM points, range(${recent}) AS steps(k)) AS r
      JOIN on_time AS e ON e.entity = r.entity AND e.kafka_partition = r.kafka_partition AND e.tile = r.tile AND e.kafka_offset <= r.kafka_offset
      GROUP BY r.entity, r.kafka_partition, r.kafka_offset
    )${old.length ? `, old AS (
      SELECT entity, kafka_partition, tile, ${old.join(', ')}
      FROM (SELECT entity, kafka_partition, tile, count(*) AS c, sum(value) AS s, min(value) AS mn, max(value) AS mx FROM on_time GROUP BY ALL)
    )` : ''}
    SELECT p.entity, p.kafka_partition, p.kafka_offset, p.as_of, p.events, ${result.join(', ')}
    FROM points AS p
      LEFT JOIN recent AS r ON r.entity = p.entity AND r.kafka_partition = p.kafka_partition AND r.kafka_offset = p.kafka_offset
      ${old.length ? `LEFT JOIN old AS o ON o.entity = p.entity AND o.kafka_partition = p.kafka_partition AND o.tile = p.as_of // ${tile}` : ''}
    ORDER BY p.kafka_partition, p.kafka_offset`;
}
