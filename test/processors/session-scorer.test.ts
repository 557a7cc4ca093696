import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { topicDeclarations } from '../../platform/catalog.ts';
import { readPartitionsToEnd } from '../../core/changelog.ts';
import { repoRoot } from '../../core/config.ts';
import { createObjectStore } from '../../core/object-store.ts';
import { createShop } from '../../ingest/shop-events/generator.ts';
import { createTopicProducer } from '../../ingest/topic-producer.ts';
import { predict } from '../../ml/purchase-model.ts';
import { trainOnSyntheticShop } from '../../ml/synthetic-model.ts';
import { applyEvent, emptySession, eventCount, isScoringPoint, sessionFeatures, type SessionState } from '../../ml/session-features.ts';
import { createSessionScorer } from '../../processors/session-scorer/job.ts';
import type { ShopEvent } from '../../schemas/shop-events.ts';
import { readFeatures } from '../../features/online-store.ts';
import { config, spawnJobs, testS3, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

/**
 * A namespaced shop pipeline for a scorer test: a real model (trained here on sessions of another
 * seed, saved where `pnpm run train` saves it), the sinks running in their own process, a
 * producer of synthetic sessions, and what the scorer must have said, recomputed from the
 * archived events with the same feature code and model.
 */
async function scorerFixture(t: TestContext, label: string) {
  const pipeline = await setupPipeline(t, label);
  const { namespace, names, query } = pipeline;
  const model = { version: 1, ...trainOnSyntheticShop({ seed: 99, sessions: 1_500, epochs: 150, now: Date.UTC(2026, 10, 20) }) };
  await createObjectStore(testS3(t), config.LAKE_BUCKET).putJson(`${names.roots.models}/purchase/v1/model.json`, model);

  const args = ['--namespace', namespace, '--flush-interval-ms', '500'];
  spawnJobs(t, ['session-predictions-lake-sink', 'session-scores-redis-sink', 'shop-events-lake-sink'], args);
  const scorer = (instance: string) => spawnJobs(t, ['session-scorer'], [...args, '--instance', instance]);
  let produced = 0;
  const produce = (sessions: number, seed: number) => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'ingest', 'cli.ts'), 'shop-events', '--sessions', String(sessions), '--seed', String(seed), '--topic', names.topic.shopEvents], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    produced += Number(/sent ([\d,]+) events/.exec(result.stdout)![1]!.replaceAll(',', ''));
  };
  const count = async (view: string) => Number((await query<{ n: string }>(`SELECT count(*) AS n FROM ${view}`))[0]!.n);

  /** Waits for the archive of every produced event, then checks every prediction against the replay. */
  async function assertScoredExactlyOnce() {
    await waitFor(`${produced} shop events in the lake`, async () => ((await count('shop_events')) === produced ? true : undefined), 180_000);
    const archived = await query<{ user_session: string; event_time: string; event_type: ShopEvent['event_type']; product_id: string; category_id: string; price: number; user_id: string }>(
      `SELECT user_session, event_time, event_type, product_id::VARCHAR AS product_id, category_id::VARCHAR AS category_id, price, user_id::VARCHAR AS user_id
       FROM shop_events ORDER BY user_session, event_time`,
    );
    const expected = new Map<string, { kind: string; probability: number }>();
    const states = new Map<string, { state: SessionState; ended: boolean; last: number }>();
    for (const row of archived) {
      const event = { ...row, event_time: Number(row.event_time), price: Number(row.price), category_code: null, brand: null } as unknown as ShopEvent;
      let entry = states.get(event.user_session);
      if (!entry) states.set(event.user_session, (entry = { state: emptySession(event), ended: false, last: 0 }));
      if (entry.ended) continue;
      applyEvent(entry.state, event);
      const key = `${event.user_session}#${eventCount(entry.state)}`;
      if (event.event_type === 'purchase') {
        entry.ended = true;
        expected.set(key, { kind: 'purchase', probability: entry.last });
      } else if (isScoringPoint(entry.state, event, 3)) {
        entry.last = predict(model, sessionFeatures(entry.state));
        expected.set(key, { kind: 'score', probability: entry.last });
      }
    }
    await waitFor(`${expected.size} predictions in the lake`, async () => ((await count('session_predictions')) >= expected.size ? true : undefined), 180_000);
    const predictions = await query<{ user_session: string; events: number; kind: string; purchase_probability: number; model_version: number }>(
      'SELECT user_session, events, kind, purchase_probability, model_version FROM session_predictions',
    );
    assert.equal(predictions.length, expected.size, 'one record per scoring point and purchase: none lost, none twice');
    for (const p of predictions) {
      const want = expected.get(`${p.user_session}#${p.events}`);
      assert.ok(want, `an expected record for ${p.user_session} at ${p.events} events`);
      assert.equal(p.kind, want.kind);
      assert.ok(Math.abs(p.purchase_probability - want.probability) < 1e-9, 'the same probability as the model gives offline');
      assert.equal(p.model_version, 1);
    }
    assert.ok(predictions.some((p) => p.kind === 'purchase') && predictions.some((p) => p.kind === 'score'));
    return { predictions, sessions: [...states.keys()] };
  }
  return { ...pipeline, scorer, produce, count, assertScoredExactlyOnce };
}

test('session scorer: every scoring point scored once with the newest model through kill -9, purchases end scoring, Redis holds the latest with a TTL', { timeout: 400_000 }, async (t) => {
  const f = await scorerFixture(t, 'scorer');
  let scorer = f.scorer('0');
  f.produce(300, 1);
  await waitFor('the scorer to score', async () => ((await f.count('session_predictions')) > 0 ? true : undefined), 120_000);
  await scorer.kill9();
  f.produce(300, 2);
  scorer = f.scorer('0');
  f.produce(200, 3);
  const { predictions, sessions } = await f.assertScoredExactlyOnce();

  const feature = f.names.features.sessionScores;
  const sample = sessions.slice(0, 20);
  const latest = new Map<string, number>();
  for (const p of predictions) if ((latest.get(p.user_session) ?? -1) < p.events) latest.set(p.user_session, p.events);
  const online = await waitFor('Redis to catch up', async () => {
    const rows = await readFeatures(f.redis, feature, sample);
    return rows.every((row, i) => (row?.events ?? undefined) === latest.get(sample[i]!)) ? rows : undefined;
  });
  assert.equal(online.length, sample.length);
  const ttl = await f.redis.ttl(`${feature.redisPrefix}${sample.find((s) => latest.has(s))}`);
  assert.ok(ttl > 0 && ttl <= feature.ttlSeconds!, `a TTL (${ttl} s)`);
});

test('session scorer: two instances share the partitions, and one leaving hands its sessions over exactly once', { timeout: 400_000 }, async (t) => {
  const f = await scorerFixture(t, 'scorer-two');
  const first = f.scorer('0');
  const second = f.scorer('1');
  f.produce(250, 4);
  // eager rebalancing: the first instance takes all six partitions, then each ends with a share
  const share = (job: typeof first) => {
    const last = [...job.output().matchAll(/"msg":"partitions assigned".*?"partitions":\[([\d,]*)\]/g)].at(-1);
    return last ? last[1]!.split(',').filter(Boolean).length : 0;
  };
  await waitFor('both instances to own a share of the partitions', async () => (share(first) > 0 && share(first) < 6 && share(second) > 0 ? true : undefined), 120_000);
  f.produce(250, 5);
  // one instance leaves mid-stream (a clean stop: it finishes its batch and hands over)
  assert.equal(await second.terminate(), 0);
  f.produce(250, 6);
  await f.assertScoredExactlyOnce();
});

test('session scorer: sessions idle longer than their TTL are forgotten, in memory and in the changelog', { timeout: 200_000 }, async (t) => {
  const { names, context } = await setupPipeline(t, 'scorer-idle');
  const scorer = createSessionScorer(context, { sessionIdleMs: 300 });
  t.after(() => scorer.stop());
  await scorer.start();
  const producer = await createTopicProducer(config, { ...topicDeclarations.shopEvents, name: names.topic.shopEvents });
  t.after(() => producer.close());
  const shop = createShop({ seed: 4 });
  const first = Array.from({ length: 20 }, () => shop.nextSession());
  await producer.send(first.flatMap((s) => s.browse));
  await waitFor('the first sessions in the scorer', async () => ((scorer.stats() as unknown as { recordsIn: number }).recordsIn > 0 ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  // one more session: its batch sweeps the idle ones
  await producer.send(shop.nextSession().browse);
  const evicted = await waitFor('idle sessions evicted', async () => {
    const n = (scorer.stats() as unknown as { stores: { sessions: { evicted: number } } }).stores.sessions.evicted;
    return n >= 20 ? n : undefined;
  });
  assert.ok(evicted >= 20);
  // the changelog's last word on each first-round session is a tombstone
  const last = new Map<string, boolean>();
  await readPartitionsToEnd(config, names.topic.sessionState, [0, 1, 2, 3, 4, 5], (message) => void last.set(message.key!.toString(), message.value === null || message.value === undefined));
  for (const session of first) assert.equal(last.get(session.user_session), true, `${session.user_session} is tombstoned`);
});
