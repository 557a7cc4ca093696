import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { repoRoot } from '../../core/config.ts';
import { createShop } from '../../ingest/shop-events/generator.ts';
import { parseShopLine, SHOP_CSV_COLUMNS } from '../../ingest/shop-events/csv.ts';
import { validateShopEvent } from '../../schemas/shop-events.ts';
import { onCleanup, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const SESSION = '51d85cb0-897f-48d2-918b-ad63965c12dc';
const line = (fields: Partial<Record<(typeof SHOP_CSV_COLUMNS)[number], string>> = {}) =>
  SHOP_CSV_COLUMNS.map(
    (column) =>
      fields[column] ??
      {
        event_time: '2019-12-01 00:00:07 UTC',
        event_type: 'cart',
        product_id: '5712790',
        category_id: '1487580005268456287',
        category_code: '',
        brand: 'f.o.x',
        price: '6.27',
        user_id: '576802932',
        user_session: SESSION,
      }[column],
  ).join(',');

test('a line of the data set becomes an exact event; what the real files hold is decided field by field', () => {
  const { event } = parseShopLine(line());
  assert.deepEqual(event, {
    event_time: Date.UTC(2019, 11, 1, 0, 0, 7),
    event_type: 'cart',
    product_id: 5_712_790,
    category_id: 1_487_580_005_268_456_287n,
    category_code: null,
    brand: 'f.o.x',
    price: 6.27,
    user_id: 576_802_932,
    user_session: SESSION,
  });
  assert.equal(parseShopLine(line({ category_code: 'appliances.environment.vacuum', brand: '' })).event?.brand, null);
  const rejected: Array<[string, RegExp]> = [
    [line({ user_session: '' }), /^user_session: must be a non-empty string/],
    [line({ price: '-0.79' }), /^price: must be a number >= 0/],
    [line({ event_type: 'wishlist' }), /^event_type: must be one of view, cart, remove_from_cart, purchase/],
    [line({ event_time: '01/12/2019 00:00' }), /^event_time: not a time/],
    [line({ category_id: '1.48758e18' }), /^category_id: not an integer/],
    [`${line()},extra`, /^expected 9 columns, found 10/],
  ];
  for (const [text, reason] of rejected) assert.match(parseShopLine(text).reject ?? '(accepted)', reason, text);
});

test('the synthetic shop is reproducible and its funnel narrows, more so for sessions without intent', () => {
  const run = (seed: number) => {
    const shop = createShop({ seed, now: Date.UTC(2026, 10, 20) });
    return Array.from({ length: 3_000 }, () => shop.nextSession());
  };
  const sessions = run(42);
  assert.deepEqual(run(42).slice(0, 5), sessions.slice(0, 5), 'same seed, same sessions');
  const events = sessions.flatMap((s) => [...s.browse, ...s.purchases]);
  for (const event of events) validateShopEvent(event);
  const count = (type: string) => events.filter((e) => e.event_type === type).length;
  assert.ok(count('view') > 2 * count('cart') && count('cart') > count('purchase') && count('remove_from_cart') > 0, 'views > carts > purchases, with removals');
  assert.ok(events.some((e) => typeof e.category_id === 'bigint' && e.category_id > 2n ** 53n), '19-digit category ids');
  const buyRate = (keep: (intent: number) => boolean) => {
    const group = sessions.filter((s) => keep(s.intent));
    return group.filter((s) => s.purchases.length).length / group.length;
  };
  assert.ok(buyRate((i) => i > 0.5) > 3 * buyRate((i) => i < 0.2), 'intent drives purchases');
  for (const session of sessions) {
    const times = [...session.browse, ...session.purchases].map((e) => e.event_time);
    assert.deepEqual(times, [...times].sort((a, b) => a - b), 'a session is in time order, purchases last');
  }
});

const producer = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'ingest', 'cli.ts'), 'shop-events', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });

test('a replayed .csv.gz and the synthetic shop both reach the lake exactly once, 19-digit ids exact, rejects kept with line numbers', { timeout: 300_000 }, async (t) => {
  const { names, job, query } = await setupPipeline(t, 'shop');
  const dir = mkdtempSync(join(tmpdir(), 'lakestream-shop-'));
  onCleanup(t, () => spawnSync('rm', ['-rf', dir]));
  const good = Array.from({ length: 40 }, (_, i) =>
    line({ event_time: `2019-12-01 00:${String(i).padStart(2, '0')}:00 UTC`, user_session: `s-${i % 7}`, category_id: String(1_487_580_005_268_456_287n + BigInt(i)) }),
  );
  const rows = [
    SHOP_CSV_COLUMNS.join(','),
    ...good.slice(0, 20),
    line({ user_session: '' }), // line 22
    good[5]!, // an exact duplicate of line 7
    line({ price: '-1.5' }), // line 24
    'garbage', // line 25
    ...good.slice(20),
  ];
  const file = join(dir, '2019-Dec.csv.gz');
  writeFileSync(file, gzipSync(rows.join('\n') + '\n'));
  const rejects = join(dir, 'rejected.csv');

  const replay = producer(['--from-csv', file, '--topic', names.topic.shopEvents, '--rejects', rejects]);
  assert.equal(replay.status, 0, replay.stderr);
  assert.match(replay.stdout, /replayed 44 lines: sent 41, rejected 3/);
  const rejectedLines = readFileSync(rejects, 'utf8').trim().split('\n').slice(1);
  assert.deepEqual(rejectedLines.map((l) => Number(l.split(',')[0])), [22, 24, 25]);
  assert.match(rejectedLines[0]!, /user_session: must be a non-empty string/);
  assert.match(rejectedLines[1]!, /price: must be a number >= 0/);

  const synthetic = producer(['--sessions', '150', '--seed', '7', '--topic', names.topic.shopEvents]);
  assert.equal(synthetic.status, 0, synthetic.stderr);
  const sent = Number(/sent ([\d,]+) events/.exec(synthetic.stdout)![1]!.replaceAll(',', ''));
  assert.ok(sent > 150);

  const sink = job('shop-events-lake-sink', { flushIntervalMs: 500 });
  await sink.start();
  const total = 41 + sent;
  await waitFor(`${total} shop events in the lake`, async () => {
    const [row] = await query<{ n: string }>('SELECT count(*) AS n FROM shop_events');
    return Number(row!.n) === total ? true : undefined;
  });
  await sink.stop();

  const [counts] = await query<{ n: string; sessions: string }>('SELECT count(*) AS n, count(DISTINCT user_session) AS sessions FROM shop_events');
  assert.equal(Number(counts!.n), total, 'every event once');
  const replayed = await query<{ category_id: string; brand: string | null; code: string | null; n: string }>(
    `SELECT category_id::VARCHAR AS category_id, brand, category_code AS code, count(*) AS n FROM shop_events WHERE user_session LIKE 's-%' GROUP BY ALL ORDER BY category_id`,
  );
  assert.equal(replayed.length, 40);
  assert.equal(replayed[0]!.category_id, '1487580005268456287', 'the 19-digit id survived CSV -> Avro -> Parquet -> DuckDB exactly');
  assert.equal(replayed[39]!.category_id, '1487580005268456326');
  assert.equal(replayed.find((r) => r.category_id === '1487580005268456292')!.n, '2', 'the duplicate line is there twice');
  assert.ok(replayed.every((r) => r.brand === 'f.o.x' && r.code === null), 'an empty category_code is null');
  const funnel = await query<{ viewed: string; carted: string; purchased: string }>(readFileSync(join(repoRoot, 'sql', 'shop-funnel.sql'), 'utf8'));
  assert.ok(funnel.length >= 1);
});
