import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { topicDeclarations } from '../../platform/catalog.ts';
import { repoRoot } from '../../core/config.ts';
import { uniformDraw } from '../../core/hash.ts';
import { createTopicProducer } from '../../ingest/topic-producer.ts';
import { addToTotals, emptyTotals, respond, type Prediction, type PromoPolicy, type PromoSession } from '../../processors/promo/economics.ts';
import { readPromoSummary } from '../../features/promo-summary.ts';
import { config, spawnJobs, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const policy: PromoPolicy = { band: [0.4, 0.7], discountRate: 0.1, uplift: 0.3, marginRate: 0.4, seed: 7 };
const policyEnv = { PROMO_BAND: '0.40-0.70', PROMO_DISCOUNT_RATE: '0.1', PROMO_UPLIFT: '0.3', PROMO_MARGIN_RATE: '0.4', PROMO_SEED: '7' };

/**
 * Sessions' predictions as the scorer writes them: a few scores each, probabilities all over
 * [0, 1] with the band's bounds and their neighbours hit exactly, and about a third ending in a
 * purchase. Sessions interleave (every session's first record, then every second one, …), so a
 * kill falls in the middle of sessions. Drawn from keys, so every run makes the same stream.
 */
function predictions(sessions: number): Prediction[] {
  const records: Array<Prediction & { step: number; i: number }> = [];
  const exact = [0.4, 0.7, 0.3999, 0.7001];
  for (let i = 0; i < sessions; i++) {
    const session = `promo-session-${i}`;
    const scores = 1 + Math.floor(uniformDraw(`${session}:n`) * 6);
    let cart = 0;
    let last: Prediction | undefined;
    for (let k = 0; k < scores; k++) {
      cart += Math.floor(uniformDraw(`${session}:${k}:cart`) * 3) * (1 + Math.round(uniformDraw(`${session}:${k}:price`) * 9_000) / 100);
      const probability = i % 10 === 0 && k === 0 ? exact[(i / 10) % 4]! : Math.round(uniformDraw(`${session}:${k}:p`) * 1e6) / 1e6;
      last = { user_session: session, user_id: i, kind: 'score', purchase_probability: probability, model_version: 1, cart_value: Math.round(cart * 100) / 100, event_time: Date.UTC(2026, 10, 23) + k * 60_000 + i };
      records.push({ ...last, step: k, i });
    }
    if (uniformDraw(`${session}:buys`) < 0.35) records.push({ ...last!, kind: 'purchase', event_time: last!.event_time + 30_000, step: scores, i });
  }
  return records.sort((a, b) => a.step - b.step || a.i - b.i).map(({ step: _step, i: _i, ...prediction }) => prediction);
}

const asRecord = (p: Prediction) => ({ ...p, events: 1, views: 1, carts: 0, removes: 0, duration_s: 1 });

test('promo job: one offer per in-band session and none outside, purchases priced once, through two kill -9; Redis economics = SQL over the lake', { timeout: 400_000 }, async (t) => {
  const { namespace, names, redis, query } = await setupPipeline(t, 'promo');
  const args = ['--namespace', namespace, '--flush-interval-ms', '500'];
  spawnJobs(t, ['promo-actions-lake-sink', 'promo-economics-lake-sink', 'promo-economics-redis-sink', 'session-predictions-lake-sink'], args);
  const promo = () => spawnJobs(t, ['promo'], [...args, '--instance', '0'], policyEnv);
  const producer = await createTopicProducer(config, { ...topicDeclarations.sessionPredictions, name: names.topic.sessionPredictions });
  t.after(() => producer.close());
  const summary = () => readPromoSummary(redis, names.features.promoEconomics);
  const stream = predictions(3_000);
  const rounds = [stream.slice(0, 3_000), stream.slice(3_000, 8_000), stream.slice(8_000)];

  let job = promo();
  await producer.send(rounds[0]!.map(asRecord));
  const first = await waitFor('the first actions in Redis', async () => ((await summary()).actions > 0 ? (await summary()).actions : undefined));
  await job.kill9();

  job = promo();
  // the second round arrives in pieces; the job is killed as soon as it has made progress on it
  const sending = (async () => {
    for (let i = 0; i < rounds[1]!.length; i += 1_000) {
      await producer.send(rounds[1]!.slice(i, i + 1_000).map(asRecord));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  await waitFor('progress on the second round', async () => ((await summary()).actions > first ? true : undefined), 120_000, 100);
  await job.kill9();
  await sending;
  job = promo();
  await producer.send(rounds[2]!.map(asRecord));

  // what the promo must have done, from the same stream in each session's order
  const expected = new Map<string, ReturnType<typeof respond>[number]>();
  const totals = emptyTotals();
  const sessions = new Map<string, PromoSession>();
  for (const p of rounds.flat()) {
    const session = sessions.get(p.user_session) ?? { offered: false, converted: false };
    sessions.set(p.user_session, session);
    for (const action of respond(policy, session, p)) {
      expected.set(`${action.user_session}|${action.action}`, action);
      addToTotals(totals, action);
    }
  }
  const count = async () => Number((await query<{ n: string }>('SELECT count(*) AS n FROM promo_actions'))[0]!.n);
  await waitFor(`${expected.size} promo actions in the lake`, async () => ((await count()) >= expected.size ? true : undefined), 180_000);
  const archived = await query<{ user_session: string; action: string; promo: boolean; simulated: boolean; purchase_probability: number; cart_cents: string; revenue_cents: string; discount_cents: string; margin_cents: string }>(
    'SELECT user_session, action, promo, simulated, purchase_probability, cart_cents, revenue_cents, discount_cents, margin_cents FROM promo_actions',
  );
  assert.equal(archived.length, expected.size, 'every action once: none lost, none repeated by a restart');
  for (const row of archived) {
    const want = expected.get(`${row.user_session}|${row.action}`);
    assert.ok(want, `an expected ${row.action} for ${row.user_session}`);
    assert.deepEqual(
      [row.promo, row.simulated, row.purchase_probability, Number(row.cart_cents), Number(row.revenue_cents), Number(row.discount_cents), Number(row.margin_cents)],
      [want.promo, want.simulated, want.purchase_probability, want.cart_cents, want.revenue_cents, want.discount_cents, want.margin_cents],
    );
  }

  // offered exactly when a score before the session's purchase lies in the band, bounds included
  const offered = new Set(archived.filter((row) => row.action === 'offer').map((row) => row.user_session));
  const inBand = new Set<string>();
  const bought = new Set<string>();
  for (const p of rounds.flat()) {
    if (p.kind === 'purchase') bought.add(p.user_session);
    else if (!bought.has(p.user_session) && p.purchase_probability >= 0.4 && p.purchase_probability <= 0.7) inBand.add(p.user_session);
  }
  assert.deepEqual([...offered].sort(), [...inBand].sort());
  for (const i of [0, 10, 20, 30]) assert.equal(offered.has(`promo-session-${i}`), i === 0 || i === 10, `bound ${[0.4, 0.7, 0.3999, 0.7001][(i / 10) % 4]}`);
  assert.ok(totals.simulated_conversions > 20 && totals.organic_conversions > 100 && totals.promo_conversions > totals.simulated_conversions, JSON.stringify(totals));

  // the economics three ways: Redis (served), SQL over the actions, the totals table's latest rows
  const [fromActions] = await query<Record<string, string>>(`
    SELECT count(*) AS actions,
           count(*) FILTER (WHERE action = 'offer') AS offers,
           count(*) FILTER (WHERE action = 'purchase' AND promo) AS promo_conversions,
           count(*) FILTER (WHERE action = 'purchase' AND simulated) AS simulated_conversions,
           count(*) FILTER (WHERE action = 'purchase' AND NOT promo) AS organic_conversions,
           sum(revenue_cents) AS revenue_cents,
           sum(revenue_cents) FILTER (WHERE promo) AS promo_revenue_cents,
           sum(discount_cents) AS discount_cents,
           sum(margin_cents) AS margin_cents
    FROM promo_actions`);
  const sql = Object.fromEntries(Object.keys(totals).map((field) => [field, Number(fromActions![field])]));
  assert.deepEqual(sql, totals, 'SQL over the archived actions gives the offline totals');
  const online = await waitFor('Redis to hold every action', async () => {
    const current = await summary();
    return current.actions === totals.actions ? current : undefined;
  });
  const { shards, updated_at, ...served } = online;
  assert.deepEqual(served, totals, 'Redis serves the same economics, to the cent');
  assert.equal(shards, topicDeclarations.sessionPredictions.partitions);
  assert.ok(updated_at! > 0);
  const latestTotals = async () => {
    const [latest] = await query<Record<string, string>>(`
      SELECT sum(offers) AS offers, sum(margin_cents) AS margin_cents
      FROM (SELECT arg_max(offers, actions) AS offers, arg_max(margin_cents, actions) AS margin_cents FROM promo_economics GROUP BY shard)`);
    return [Number(latest!.offers), Number(latest!.margin_cents)];
  };
  await waitFor('the archived running totals to end where the actions do', async () => {
    const [offers, margin] = await latestTotals();
    return offers === totals.offers && margin === totals.margin_cents ? true : undefined;
  });

  // the shipped queries over the same lake
  const shipped = (file: string) => query<Record<string, string | number>>(readFileSync(join(repoRoot, 'sql', file), 'utf8'));
  const roi = (await shipped('promo-roi.sql')).find((row) => row.dt === 'total')!;
  assert.deepEqual(
    [roi.offers, roi.promo_purchases, roi.simulated_purchases, roi.discount_cents, roi.promo_margin_cents, roi.organic_purchases].map(Number),
    [totals.offers, totals.promo_conversions, totals.simulated_conversions, totals.discount_cents, [...expected.values()].filter((a) => a.action === 'purchase' && a.promo).reduce((cents, a) => cents + a.margin_cents, 0), totals.organic_conversions],
  );
  const scoredSessions = new Set(stream.filter((p) => p.kind === 'score').map((p) => p.user_session));
  const purchased = new Set([...archived.filter((row) => row.action === 'purchase').map((row) => row.user_session)].filter((session) => scoredSessions.has(session)));
  await waitFor('every prediction in the lake', async () => {
    const [row] = await query<{ n: string }>('SELECT count(*) AS n FROM session_predictions');
    return Number(row!.n) === stream.length ? true : undefined;
  });
  const bands = await shipped('conversion-by-band.sql');
  const sum = (field: string) => bands.reduce((total, row) => total + Number(row[field]), 0);
  assert.deepEqual([sum('sessions'), sum('purchased'), sum('offered')], [scoredSessions.size, purchased.size, offered.size]);
  for (const row of bands) {
    const [low, high] = String(row.band).split('-').map(Number);
    assert.ok(Number(row.mean_probability) >= low! && Number(row.mean_probability) <= high!, `band ${row.band}: mean ${row.mean_probability}`);
  }
});
