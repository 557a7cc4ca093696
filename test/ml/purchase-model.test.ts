import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createShop } from '../../ingest/shop-events/generator.ts';
import { auc, calibration, logLoss } from '../../ml/metrics.ts';
import { predict, trainBoostedTrees, trainLogistic } from '../../ml/purchase-model.ts';
import { applyEvent, emptySession, SESSION_FEATURES, sessionFeatures } from '../../ml/session-features.ts';

test('metrics: AUC counts ties as half, log loss and calibration bins say what they should', () => {
  assert.equal(auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]), 1);
  assert.equal(auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]), 0);
  assert.equal(auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]), 0.5);
  assert.ok(Math.abs(logLoss([0.5, 0.5], [0, 1]) - Math.log(2)) < 1e-12);
  const bins = calibration([0.05, 0.15, 0.95, 0.92], [0, 0, 1, 1], 10);
  assert.equal(bins.length, 10);
  assert.deepEqual(bins[9], { from: 0.9, to: 1, count: 2, meanPredicted: 0.935, observedRate: 1 });
});

test('session features are as of each event: a later event never changes an earlier snapshot', () => {
  const shop = createShop({ seed: 3, now: Date.UTC(2026, 10, 20) });
  let session = shop.nextSession();
  while (session.browse.filter((e) => e.event_type === 'cart').length < 2) session = shop.nextSession();
  const state = emptySession(session.browse[0]!);
  const snapshots = session.browse.map((event) => {
    applyEvent(state, event);
    return sessionFeatures(state);
  });
  const views = SESSION_FEATURES.indexOf('views');
  const carts = SESSION_FEATURES.indexOf('carts');
  assert.equal(snapshots[0]![views], 1);
  assert.equal(snapshots.at(-1)![carts], session.browse.filter((e) => e.event_type === 'cart').length);
  // replaying only a prefix gives the same snapshot as the prefix of the full replay
  const prefix = emptySession(session.browse[0]!);
  for (const event of session.browse.slice(0, 2)) applyEvent(prefix, event);
  assert.deepEqual(sessionFeatures(prefix), snapshots[1]);
});

test('on the synthetic shop both models learn purchases from session features; boosted trees at least match the baseline', () => {
  const shop = createShop({ seed: 11, now: Date.UTC(2026, 10, 20) });
  const rows: Array<{ x: number[]; y: number; holdout: boolean }> = [];
  for (let s = 0; s < 6_000; s++) {
    const session = shop.nextSession();
    const state = emptySession(session.browse[0]!);
    const bought = session.purchases.length ? 1 : 0;
    // a scoring point after every browse event, labelled with what the session did later
    for (const event of session.browse) {
      applyEvent(state, event);
      rows.push({ x: sessionFeatures(state), y: bought, holdout: s % 10 < 3 });
    }
  }
  const train = rows.filter((r) => !r.holdout);
  const test = rows.filter((r) => r.holdout);
  const features = [...SESSION_FEATURES];
  const baseline = trainLogistic(features, train.map((r) => r.x), train.map((r) => r.y));
  const trees = trainBoostedTrees(features, train.map((r) => r.x), train.map((r) => r.y), { trees: 60 });
  const score = (model: Parameters<typeof predict>[0]) => test.map((r) => predict(model, r.x));
  const labels = test.map((r) => r.y);
  const baselineAuc = auc(score(baseline), labels);
  const treesAuc = auc(score(trees), labels);
  // the target on the synthetic shop: the chosen model at least 0.80, and not below the baseline
  assert.ok(Math.max(baselineAuc, treesAuc) >= 0.8, `held-out AUC: logistic ${baselineAuc.toFixed(3)}, boosted trees ${treesAuc.toFixed(3)}`);
  assert.ok(treesAuc >= baselineAuc - 0.005, `boosted trees ${treesAuc.toFixed(3)} vs baseline ${baselineAuc.toFixed(3)}`);
  assert.ok(logLoss(score(trees), labels) < logLoss(test.map(() => labels.reduce((a, b) => a + b, 0) / labels.length), labels), 'better than the base rate');
  const parsed = JSON.parse(JSON.stringify(trees));
  assert.equal(predict(parsed, test[0]!.x), predict(trees, test[0]!.x), 'the JSON artifact is the model');
});
