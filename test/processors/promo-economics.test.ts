import assert from 'node:assert/strict';
import { test } from 'node:test';
import { acceptsOffer, addToTotals, emptyTotals, respond, sumTotals, type Prediction, type PromoPolicy, type PromoSession } from '../../processors/promo/economics.ts';

const policy: PromoPolicy = { band: [0.4, 0.7], discountRate: 0.1, uplift: 0.1, marginRate: 0.4, seed: 1 };
const fresh = (): PromoSession => ({ offered: false, converted: false });
const score = (probability: number, cart = 50, session = 's1'): Prediction => ({
  user_session: session,
  user_id: 7,
  kind: 'score',
  purchase_probability: probability,
  model_version: 3,
  cart_value: cart,
  event_time: 1_000,
});
const purchase = (cart = 50, session = 's1'): Prediction => ({ ...score(0.5, cart, session), kind: 'purchase' });

test('promo: an offer for the first score inside the band, bounds included, and none outside it or again', () => {
  const noUplift = { ...policy, uplift: 0 };
  for (const p of [0.3999, 0.7001, 0, 1]) assert.deepEqual(respond(noUplift, fresh(), score(p)), [], `no offer at ${p}`);
  for (const p of [0.4, 0.55, 0.7]) {
    const session = fresh();
    const actions = respond(noUplift, session, score(p));
    assert.equal(actions.length, 1);
    assert.equal(actions[0]!.action, 'offer');
    assert.equal(actions[0]!.purchase_probability, p);
    assert.equal(actions[0]!.cart_cents, 5_000);
    assert.deepEqual(respond(noUplift, session, score(0.6)), [], 'a session is offered once');
  }
});

test('promo: a purchase counts as organic without an offer, pays the discount after one, and only once', () => {
  const organic = fresh();
  const [bought] = respond({ ...policy, uplift: 0 }, organic, purchase(123.45));
  assert.deepEqual(
    { promo: bought!.promo, simulated: bought!.simulated, revenue: bought!.revenue_cents, discount: bought!.discount_cents, margin: bought!.margin_cents },
    { promo: false, simulated: false, revenue: 12_345, discount: 0, margin: 4_938 },
  );
  assert.deepEqual(respond(policy, organic, score(0.5)), [], 'no offer after a purchase');
  assert.deepEqual(respond(policy, organic, purchase()), [], 'a second purchase record is the same checkout');

  const offered = fresh();
  respond({ ...policy, uplift: 0 }, offered, score(0.5, 10));
  const [discounted] = respond(policy, offered, purchase(123.45));
  assert.deepEqual(
    { promo: discounted!.promo, simulated: discounted!.simulated, revenue: discounted!.revenue_cents, discount: discounted!.discount_cents, margin: discounted!.margin_cents },
    { promo: true, simulated: false, revenue: 11_110, discount: 1_235, margin: 4_938 - 1_235 },
  );
});

test('promo: the simulated response buys at once with chance uplift / (1 - p), the same draw in every run, never with an empty cart', () => {
  const rate = (p: number, seed: number) => {
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) if (acceptsOffer({ ...policy, uplift: 0.15, seed }, `session-${i}`, p)) accepted++;
    return accepted / 20_000;
  };
  for (const p of [0.4, 0.5, 0.7]) {
    const observed = rate(p, 1);
    assert.ok(Math.abs(observed - 0.15 / (1 - p)) < 0.015, `at p=${p}: ${observed} vs ${0.15 / (1 - p)}`);
  }
  assert.equal(rate(0.5, 1), rate(0.5, 1), 'reproducible');
  const draws = (seed: number) => Array.from({ length: 200 }, (_, i) => acceptsOffer({ ...policy, uplift: 0.3, seed }, `s${i}`, 0.5));
  assert.notDeepEqual(draws(1), draws(2), 'another seed, other customers');

  const always = { ...policy, uplift: 1 };
  const session = fresh();
  const [offer, bought] = respond(always, session, score(0.6, 80));
  assert.equal(offer!.action, 'offer');
  assert.deepEqual({ action: bought!.action, promo: bought!.promo, simulated: bought!.simulated, revenue: bought!.revenue_cents, discount: bought!.discount_cents }, {
    action: 'purchase',
    promo: true,
    simulated: true,
    revenue: 7_200,
    discount: 800,
  });
  assert.deepEqual(respond(always, session, purchase(80)), [], 'the shop checkout that follows is that purchase');
  assert.deepEqual(respond(always, fresh(), score(0.6, 0)).map((a) => a.action), ['offer'], 'an empty cart: an offer, no purchase');
});

test('promo: totals add up per action and sum across shards', () => {
  const totals = emptyTotals();
  const session = fresh();
  for (const action of [...respond({ ...policy, uplift: 1 }, session, score(0.5, 20)), ...respond(policy, fresh(), purchase(10, 's2'))]) addToTotals(totals, action);
  assert.deepEqual(totals, {
    actions: 3,
    offers: 1,
    promo_conversions: 1,
    simulated_conversions: 1,
    organic_conversions: 1,
    revenue_cents: 1_800 + 1_000,
    promo_revenue_cents: 1_800,
    discount_cents: 200,
    margin_cents: 800 - 200 + 400,
  });
  assert.deepEqual(sumTotals([totals, { ...totals, offers: '2' as unknown as number }, {}]).offers, 3);
});
