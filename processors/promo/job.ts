import { processorDeclarations } from '../../platform/catalog.ts';
import type { ClientContext } from '../../platform/context.ts';
import type { StreamJob } from '../../core/runtime/index.ts';
import { createProcessorJob, type StoreSpec } from '../../core/runtime/processor.ts';
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
  const output = catalog.topic[declaration.outputs[0]];
  const policy = options.policy ?? promoPolicy(context.config);
  const sessions: StoreSpec<PromoSession> = {
    changelog: catalog.topic[declaration.stores.sessions],
    encode: (session, state, eventTime) => ({ user_session: session, offered: state.offered, converted: state.converted, event_time: eventTime }),
    decode: (record) => ({ offered: Boolean(record.offered), converted: Boolean(record.converted) }),
    idleMs: options.sessionIdleMs ?? 24 * 60 * 60 * 1000,
  };
  // one running total per partition, key p<partition>
  const totals: StoreSpec<PromoTotals> = {
    changelog: catalog.topic[declaration.stores.totals],
    encode: (shard, partitionTotals, eventTime) => ({ shard, ...partitionTotals, event_time: eventTime }),
    decode: (record) => Object.fromEntries(Object.keys(emptyTotals()).map((field) => [field, Number(record[field])])) as unknown as PromoTotals,
  };
  const stats = { offers: 0, purchases: 0 };
  log.info('promo policy', { job: name, policy });

  return createProcessorJob<Prediction, { sessions: StoreSpec<PromoSession>; totals: StoreSpec<PromoTotals> }>(
    { name, input: catalog.topic[declaration.input], instance: options.instance, stores: { sessions, totals } },
    context,
    () => ({
      async process(prediction, { partition, stores, forward }) {
        const known = stores.sessions.get(prediction.user_session);
        // a session neither offered nor converted is not kept: it is the same as one never seen
        const session = known ?? { offered: false, converted: false };
        const actions = respond(policy, session, prediction);
        if (!actions.length) return stores.sessions.touch(prediction.user_session);
        stores.sessions.put(prediction.user_session, session, prediction.event_time);
        const shard = shardOf(partition);
        const partitionTotals = stores.totals.get(shard) ?? emptyTotals();
        for (const action of actions) {
          addToTotals(partitionTotals, action);
          if (action.action === 'offer') stats.offers++;
          else stats.purchases++;
          const produced = forward(output, action.user_session, { ...action });
          if (produced) await produced;
        }
        stores.totals.put(shard, partitionTotals, prediction.event_time);
      },
      stats: () => ({ ...stats }),
    }),
  );
}
