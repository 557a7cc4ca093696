import { createAvroDecoder } from '../core/avro.ts';
import { catalog, topicDeclarations } from '../platform/catalog.ts';
import type { Config } from '../core/config.ts';
import { createConsumer } from '../core/kafka.ts';
import { createObjectStore } from '../core/object-store.ts';
import type { Profile } from '../core/profile.ts';
import { createRegistry } from '../core/registry.ts';
import { sleep } from '../core/retry.ts';
import { createS3 } from '../core/s3.ts';
import { LatencyRecorder } from '../core/stats.ts';
import { createShop, type Session } from '../ingest/shop-events/generator.ts';
import { createTopicProducer } from '../ingest/topic-producer.ts';
import { trainOnSyntheticShop } from '../ml/synthetic-model.ts';
import { applyEvent, emptySession, isScoringPoint } from '../ml/session-features.ts';
import type { ShopEvent } from '../schemas/shop-events.ts';
import { startJobProcess } from '../scripts/pipeline-process.ts';

export interface ScorerBench {
  instances: number;
  events: number;
  predictions: number;
  /** Shop events through the scorers per second: a backlog produced while they run, until its last prediction is readable. */
  eventsPerSecond: number;
  /** Event sent → its prediction readable (read_committed), at a steady rate under the latency profile. */
  latency: { rate: number; p50: number; p99: number; max: number; count: number };
}

const eventsOf = (session: Session) => [...session.browse, ...session.purchases];

/** Predictions the scorer makes for `sessions` (scoring points and purchases), by session and event number. */
function predictionPoints(sessions: Session[]): Set<string> {
  const points = new Set<string>();
  for (const session of sessions) {
    const events = eventsOf(session);
    const state = emptySession(events[0]!);
    for (const [i, event] of events.entries()) {
      applyEvent(state, event);
      if (event.event_type === 'purchase' || isScoringPoint(state, event)) points.add(`${event.user_session}#${i + 1}`);
      if (event.event_type === 'purchase') break;
    }
  }
  return points;
}

/**
 * The session scorer, two instances sharing the partitions as in production: scored events per
 * second through a backlog, and event → prediction latency at a steady rate. The scorers run as
 * `pnpm run job` processes on a namespace of their own, with a model trained here.
 */
export async function benchScorer(config: Config, options: { namespace: string; quick: boolean; log(message: string): void }): Promise<ScorerBench> {
  const { log } = options;
  const names = catalog(options.namespace);
  const instances = 2;
  const store = createObjectStore(createS3(config), config.LAKE_BUCKET);
  const modelKey = `${names.roots.models}/purchase/v1/model.json`;
  await store.putJson(modelKey, { version: 1, ...trainOnSyntheticShop({ seed: 99, sessions: 1_500, epochs: 100 }) });

  const registry = createRegistry(config);
  const decode = createAvroDecoder(registry);
  const producer = await createTopicProducer(config, { ...topicDeclarations.shopEvents, name: names.topic.shopEvents }, { lingerMs: 0 });
  const arrivals = new Map<string, number>();
  const consumer = createConsumer(config, `${options.namespace}-bench-reader`);
  await consumer.connect();
  await consumer.subscribe({ topics: [names.topic.sessionPredictions] });
  void consumer.run({
    eachBatch: async ({ batch }) => {
      const now = performance.now();
      for (const message of batch.messages) {
        const decoded = decode(message.value!);
        const { value } = decoded instanceof Promise ? await decoded : decoded;
        arrivals.set(`${value.user_session}#${value.events}`, now);
      }
    },
  });

  const startScorers = async (profile: Profile) => {
    const processes = Array.from({ length: instances }, (_, i) =>
      startJobProcess(['session-scorer'], ['--namespace', options.namespace, '--instance', String(i)], { LAKESTREAM_PROFILE: profile }),
    );
    // ready once each owns partitions and the group has settled
    const deadline = Date.now() + 60_000;
    while (!processes.every((p) => p.output().includes('partitions assigned')) && Date.now() < deadline) await sleep(200);
    await sleep(3_000);
    return async () => {
      // where each instance's time went (the runtime's mean batch and commit times)
      for (const p of processes) log(`scorer ${profile}: ${[...p.output().matchAll(/"msg":"stats".*/g)].at(-1)?.[0] ?? 'no stats yet'}`);
      await Promise.all(processes.map((p) => p.terminate()));
    };
  };
  const shop = createShop({ seed: 5 });
  const waitForPoints = async (points: Set<string>, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let missing = 0;
      for (const point of points) if (!arrivals.has(point)) missing++;
      if (!missing || Date.now() > deadline) return missing;
      await sleep(100);
    }
  };

  // 1. A backlog, produced as fast as it goes while two scorers (throughput profile) run.
  log(`scorer: ${instances} instances, throughput profile`);
  let stop = await startScorers('throughput');
  const backlog = Array.from({ length: options.quick ? 4_000 : 12_000 }, () => shop.nextSession());
  const backlogEvents = backlog.flatMap(eventsOf);
  const backlogPoints = predictionPoints(backlog);
  const started = performance.now();
  log(`scorer: ${backlogEvents.length} events of ${backlog.length} sessions`);
  for (let i = 0; i < backlogEvents.length; i += 5_000) await producer.send(backlogEvents.slice(i, i + 5_000));
  const missing = await waitForPoints(backlogPoints, 300_000);
  if (missing) log(`scorer: ${missing} predictions never arrived`);
  const done = Math.max(...[...backlogPoints].map((point) => arrivals.get(point) ?? 0));
  const eventsPerSecond = backlogEvents.length / ((done - started) / 1000);
  await stop();

  // 2. A steady stream under the latency profile: each event's send time against its prediction's arrival.
  log(`scorer: ${instances} instances, latency profile, steady rate`);
  stop = await startScorers('latency');
  const rate = 2_000;
  const seconds = options.quick ? 15 : 30;
  const sentAt = new Map<string, number>();
  const pending: ShopEvent[] = [];
  const counters = new Map<string, number>();
  const steadySessions: Session[] = [];
  const streamStarted = performance.now();
  for (let tick = 0; performance.now() < streamStarted + seconds * 1000; tick++) {
    const due = streamStarted + tick * 20;
    if (due > performance.now()) await sleep(due - performance.now());
    while (pending.length < rate / 50) {
      const session = shop.nextSession();
      steadySessions.push(session);
      pending.push(...eventsOf(session));
    }
    const batch = pending.splice(0, rate / 50);
    const now = performance.now();
    for (const event of batch) {
      const n = (counters.get(event.user_session) ?? 0) + 1;
      counters.set(event.user_session, n);
      sentAt.set(`${event.user_session}#${n}`, now);
    }
    void producer.send(batch);
  }
  // the last sessions may be cut short: only the points of events actually sent count
  const steadyPoints = new Set([...predictionPoints(steadySessions)].filter((point) => sentAt.has(point)));
  await waitForPoints(steadyPoints, 60_000);
  const recorder = new LatencyRecorder();
  const warmUntil = streamStarted + 5_000;
  for (const point of steadyPoints) {
    const sent = sentAt.get(point)!;
    const arrived = arrivals.get(point);
    if (arrived !== undefined && sent >= warmUntil) recorder.record(arrived - sent);
  }
  await stop();
  await producer.close();
  await consumer.disconnect();
  await store.delete([modelKey]);
  return {
    instances,
    events: backlogEvents.length,
    predictions: backlogPoints.size,
    eventsPerSecond,
    latency: { rate, ...recorder.summary(), count: recorder.count },
  };
}
