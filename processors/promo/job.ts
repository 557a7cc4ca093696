import { avroCodec, type AvroCodec } from '../../core/avro.ts';
import { processorDeclarations } from '../../core/catalog.ts';
import { evictIdle, restoreKeyedState } from '../../core/changelog.ts';
import type { ClientContext } from '../../core/context.ts';
import { createStreamJob, type StreamJob } from '../../core/runtime/index.ts';
import { addToTotals, emptyTotals, respond, type Prediction, type PromoPolicy, type PromoSession, type PromoTotals } from './economics.ts';

export interface PromoJobOptions {
  /** Stable id of this process among the promo's processes (its transactional id). */
  instance?: string;
  /** Default: from the environment (PROMO_BAND, PROMO_DISCOUNT_RATE, PROMO_UPLIFT, PROMO_MARGIN_RATE, PROMO_SEED). */
  policy?: PromoPolicy;
  /**
   * A session that got no prediction for this long is forgotten (default 24 h, wall clock). Far
   * longer than the scorer's session TTL, so a session the scorer forgot and starts scoring again
   * is still remembered here and is never offered twice.
   */
  sessionIdleMs?: number;
}

interface RememberedSession extends PromoSession {
  /** When this process last saw a prediction of the session (or restored it). */
  touchedAt: number;
}

const shardOf = (partition: number) => `p${partition}`;

export function promoPolicy(config: ClientContext['config']): PromoPolicy {
  return {
    band: config.PROMO_BAND as [number, number],
    discountRate: config.PROMO_DISCOUNT_RATE,
    uplift: config.PROMO_UPLIFT,
    marginRate: config.PROMO_MARGIN_RATE,
    seed: config.PROMO_SEED,
  };
}

/**
 * Offers a discount to undecided shop sessions, once each, and keeps the promo's economics,
 * exactly once. It reads session-predictions; `economics.ts` decides, per record, the offer, the
 * simulated customer's response and the money. Each batch is one Kafka transaction holding the
 * actions (promo-actions), the changed session states (compacted promo-state), the running totals
 * of each touched partition (compacted promo-economics, key p<partition>) and the offsets. Both
 * changelogs are restored on assignment, so a kill -9 neither repeats an offer nor loses or
 * double-counts a cent. The Redis sink serves the totals; the lake sinks archive actions and totals.
 */
export function createPromoJob(context: ClientContext, options: PromoJobOptions = {}): StreamJob {
  const { catalog, log } = context;
  const declaration = processorDeclarations.promo;
  const name = catalog.group(declaration.name);
  const output = catalog.topic[declaration.output];
  const stateTopic = catalog.topic[declaration.state];
  const totalsTopic = catalog.topic[declaration.totals];
  const policy = options.policy ?? promoPolicy(context.config);
  const sessionIdleMs = options.sessionIdleMs ?? 24 * 60 * 60 * 1000;
  const sessions = new Map<number, Map<string, RememberedSession>>();
  const totals = new Map<number, PromoTotals>();
  const stats = { offers: 0, purchases: 0, restoredSessions: 0, evictedSessions: 0 };
  let sweptAt = Date.now();
  let codecs: { action: AvroCodec; state: AvroCodec; totals: AvroCodec } | undefined;

  async function restore(partitions: number[]): Promise<void> {
    const [restoredSessions, restoredTotals] = await Promise.all([
      restoreKeyedState(context, stateTopic, partitions, {
        key: String,
        value: (record): RememberedSession => ({ offered: Boolean(record.offered), converted: Boolean(record.converted), touchedAt: Date.now() }),
      }),
      restoreKeyedState(context, totalsTopic, partitions, {
        key: String,
        value: (record) => Object.fromEntries(Object.keys(emptyTotals()).map((field) => [field, Number(record[field])])) as unknown as PromoTotals,
      }),
    ]);
    for (const partition of partitions) {
      const map = restoredSessions.states.get(partition)!;
      sessions.set(partition, map);
      totals.set(partition, restoredTotals.states.get(partition)!.get(shardOf(partition)) ?? emptyTotals());
      stats.restoredSessions += map.size;
    }
    log.info('restored state', { job: name, partitions, sessions: restoredSessions.records, policy });
  }

  return createStreamJob({ name, topic: catalog.topic[declaration.input], commit: 'transaction', transactionalId: `${name}-${options.instance ?? '0'}` }, context, () => ({
    async handle(batches, batchContext) {
      codecs ??= {
        action: await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${output}-value`)),
        state: await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${stateTopic}-value`)),
        totals: await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${totalsTopic}-value`)),
      };
      const produce = async (topic: string, key: string, partition: number, value: Buffer | null) => {
        const produced = batchContext.produce(topic, { key, partition, value });
        if (produced) await produced;
      };
      for (const batch of batches) {
        if (!sessions.has(batch.partition)) await restore([batch.partition]);
        const map = sessions.get(batch.partition)!;
        const partitionTotals = totals.get(batch.partition)!;
        const changed = new Map<string, { session: RememberedSession; eventTime: number }>();
        let lastEventTime = 0;
        for (const record of batch.records) {
          const prediction = record.value as unknown as Prediction;
          // a session neither offered nor converted is not kept: it is the same as one never seen
          const session = map.get(prediction.user_session) ?? { offered: false, converted: false, touchedAt: 0 };
          session.touchedAt = Date.now();
          const actions = respond(policy, session, prediction);
          if (!actions.length) continue;
          map.set(prediction.user_session, session);
          changed.set(prediction.user_session, { session, eventTime: prediction.event_time });
          for (const action of actions) {
            addToTotals(partitionTotals, action);
            if (action.action === 'offer') stats.offers++;
            else stats.purchases++;
            await produce(output, action.user_session, batch.partition, codecs.action.encodeTransient({ ...action }));
          }
          lastEventTime = Math.max(lastEventTime, prediction.event_time);
        }
        for (const [key, { session, eventTime }] of changed) {
          await produce(stateTopic, key, batch.partition, codecs.state.encodeTransient({ user_session: key, offered: session.offered, converted: session.converted, event_time: eventTime }));
        }
        if (changed.size) {
          const shard = shardOf(batch.partition);
          await produce(totalsTopic, shard, batch.partition, codecs.totals.encodeTransient({ shard, ...partitionTotals, event_time: lastEventTime }));
        }
      }
      // Forget sessions idle for longer than sessionIdleMs, with a tombstone in the same
      // transaction; swept every quarter of that period, when records come.
      if (Date.now() - sweptAt >= sessionIdleMs / 4) {
        stats.evictedSessions += await evictIdle(sessions, sessionIdleMs, (key, partition) => produce(stateTopic, key, partition, null));
        sweptAt = Date.now();
      }
    },
    assigned: (partitions) => restore(partitions),
    revoked: async (partitions) => partitions.forEach((p) => (sessions.delete(p), totals.delete(p))),
    // state is changed in place and a sweep may touch every partition: rebuild them all
    aborted: () => (sessions.clear(), totals.clear()),
    stats: () => ({ ...stats }),
  }));
}
