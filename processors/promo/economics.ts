import { uniformDraw } from '../../core/hash.ts';

/**
 * The promo's decisions and money, as pure functions of a session's predictions: the job
 * (`job.ts`) only keeps their state exactly once. Money is in integer cents so that totals summed
 * in any order, by the job, in Redis or by SQL over the lake, are equal to the cent.
 */

export interface PromoPolicy {
  /** Inclusive probability band of the sessions offered a discount. */
  band: readonly [number, number];
  discountRate: number;
  /**
   * How much an offer raises the purchase probability p of a session, in absolute points: the
   * simulated customer who gets an offer at probability p checks out at once with probability
   * uplift / (1 - p), and otherwise goes on as the shop's own events say. If the model is
   * calibrated, P(purchase | offer) = p + uplift.
   */
  uplift: number;
  /** Gross margin on list prices; a discount comes out of it. */
  marginRate: number;
  /** Seeds the simulated responses: one draw per session, the same in every run and replay. */
  seed: number;
}

/** What the promo job remembers of a session. */
export interface PromoSession {
  offered: boolean;
  /** A purchase was counted: nothing more happens to the session. */
  converted: boolean;
}

/** The fields of a session-predictions record the promo reads. */
export interface Prediction {
  user_session: string;
  user_id: number | bigint;
  kind: string;
  purchase_probability: number;
  model_version: number;
  cart_value: number;
  event_time: number;
}

export interface PromoAction {
  user_session: string;
  user_id: number | bigint;
  action: 'offer' | 'purchase';
  promo: boolean;
  simulated: boolean;
  purchase_probability: number;
  model_version: number;
  discount_rate: number;
  margin_rate: number;
  cart_cents: number;
  revenue_cents: number;
  discount_cents: number;
  margin_cents: number;
  event_time: number;
}

export interface PromoTotals {
  actions: number;
  offers: number;
  promo_conversions: number;
  simulated_conversions: number;
  organic_conversions: number;
  revenue_cents: number;
  promo_revenue_cents: number;
  discount_cents: number;
  margin_cents: number;
}

export const emptyTotals = (): PromoTotals => ({
  actions: 0,
  offers: 0,
  promo_conversions: 0,
  simulated_conversions: 0,
  organic_conversions: 0,
  revenue_cents: 0,
  promo_revenue_cents: 0,
  discount_cents: 0,
  margin_cents: 0,
});

export function inBand(policy: PromoPolicy, probability: number): boolean {
  return probability >= policy.band[0] && probability <= policy.band[1];
}

/** The simulated customer's response to an offer at `probability`: buys now, or not. */
export function acceptsOffer(policy: PromoPolicy, session: string, probability: number): boolean {
  const chance = probability >= 1 ? 1 : Math.min(1, policy.uplift / (1 - probability));
  return uniformDraw(`${policy.seed}:${session}`) < chance;
}

/**
 * The promo's answer to one prediction of a session, updating the session: an offer (and
 * possibly the simulated purchase it causes) for the first in-band score, a purchase for the
 * session's first purchase. A session that bought gets nothing more: a purchase event of a
 * session whose simulated response already bought is the same checkout, not a second one.
 */
export function respond(policy: PromoPolicy, session: PromoSession, prediction: Prediction): PromoAction[] {
  if (session.converted) return [];
  const cartCents = Math.round(prediction.cart_value * 100);
  const base = {
    user_session: prediction.user_session,
    user_id: prediction.user_id,
    purchase_probability: prediction.purchase_probability,
    model_version: prediction.model_version,
    discount_rate: policy.discountRate,
    margin_rate: policy.marginRate,
    cart_cents: cartCents,
    event_time: prediction.event_time,
  };
  const purchase = (promo: boolean, simulated: boolean): PromoAction => {
    const discount = promo ? Math.round(cartCents * policy.discountRate) : 0;
    return {
      ...base,
      action: 'purchase',
      promo,
      simulated,
      revenue_cents: cartCents - discount,
      discount_cents: discount,
      margin_cents: Math.round(cartCents * policy.marginRate) - discount,
    };
  };
  if (prediction.kind === 'purchase') {
    session.converted = true;
    return [purchase(session.offered, false)];
  }
  if (prediction.kind !== 'score' || session.offered || !inBand(policy, prediction.purchase_probability)) return [];
  session.offered = true;
  const offer: PromoAction = { ...base, action: 'offer', promo: true, simulated: false, revenue_cents: 0, discount_cents: 0, margin_cents: 0 };
  // an empty cart has nothing to check out, whatever the discount
  if (cartCents <= 0 || !acceptsOffer(policy, prediction.user_session, prediction.purchase_probability)) return [offer];
  session.converted = true;
  return [offer, purchase(true, true)];
}

export function addToTotals(totals: PromoTotals, action: PromoAction): void {
  totals.actions++;
  if (action.action === 'offer') {
    totals.offers++;
    return;
  }
  if (action.promo) {
    totals.promo_conversions++;
    totals.promo_revenue_cents += action.revenue_cents;
  } else {
    totals.organic_conversions++;
  }
  if (action.simulated) totals.simulated_conversions++;
  totals.revenue_cents += action.revenue_cents;
  totals.discount_cents += action.discount_cents;
  totals.margin_cents += action.margin_cents;
}

/** Totals of several shards as one summary. */
export function sumTotals(shards: Array<Partial<Record<keyof PromoTotals, number | string | null>>>): PromoTotals {
  const sum = emptyTotals();
  for (const shard of shards) {
    for (const field of Object.keys(sum) as Array<keyof PromoTotals>) sum[field] += Number(shard[field] ?? 0);
  }
  return sum;
}
