import type { ShopEvent } from '../schemas/shop-events.ts';

/**
 * A session's running aggregates and the features a purchase model sees, computed by one piece of
 * code for training (replaying the lake's events in order) and for live scoring (the scorer's
 * state), so the two cannot drift apart. Features are as of the last event applied: nothing of a
 * later event is ever in them (point-in-time correct by construction).
 */
export const SESSION_FEATURES = [
  'views',
  'carts',
  'removes',
  'events',
  'distinct_products',
  'distinct_categories',
  'cart_value',
  'cart_items',
  'duration_s',
  'mean_view_price',
  'max_view_price',
  'carts_per_view',
  'removes_per_cart',
  'seconds_since_previous',
] as const;

export type SessionFeatureName = (typeof SESSION_FEATURES)[number];

export interface SessionState {
  user_id: number | bigint;
  firstEventTime: number;
  lastEventTime: number;
  previousEventTime: number;
  views: number;
  carts: number;
  removes: number;
  purchases: number;
  /** product id → units in the cart (cart adds minus removals), for the cart's value */
  cart: Map<string, { units: number; price: number }>;
  products: Set<string>;
  categories: Set<string>;
  viewPriceSum: number;
  viewPriceMax: number;
}

export function emptySession(first: ShopEvent): SessionState {
  return {
    user_id: first.user_id,
    firstEventTime: first.event_time,
    lastEventTime: first.event_time,
    previousEventTime: first.event_time,
    views: 0,
    carts: 0,
    removes: 0,
    purchases: 0,
    cart: new Map(),
    products: new Set(),
    categories: new Set(),
    viewPriceSum: 0,
    viewPriceMax: 0,
  };
}

/** Applies one event of the session (events arrive in the session's order). */
export function applyEvent(state: SessionState, event: ShopEvent): void {
  const product = String(event.product_id);
  state.previousEventTime = state.lastEventTime;
  state.lastEventTime = Math.max(state.lastEventTime, event.event_time);
  state.products.add(product);
  state.categories.add(String(event.category_id));
  switch (event.event_type) {
    case 'view':
      state.views++;
      state.viewPriceSum += event.price;
      state.viewPriceMax = Math.max(state.viewPriceMax, event.price);
      break;
    case 'cart': {
      state.carts++;
      const line = state.cart.get(product) ?? { units: 0, price: event.price };
      line.units++;
      state.cart.set(product, line);
      break;
    }
    case 'remove_from_cart': {
      state.removes++;
      const line = state.cart.get(product);
      if (line && --line.units <= 0) state.cart.delete(product);
      break;
    }
    case 'purchase':
      state.purchases++;
      break;
  }
}

/** Events applied so far. */
export function eventCount(state: SessionState): number {
  return state.views + state.carts + state.removes + state.purchases;
}

/** How many events apart the scorer scores a session besides its cart adds and removals. */
export const SCORE_EVERY = 3;

/** The scorer's policy: score on every cart add and removal, and after every `every` events. */
export function isScoringPoint(state: SessionState, event: ShopEvent, every = SCORE_EVERY): boolean {
  return event.event_type === 'cart' || event.event_type === 'remove_from_cart' || (event.event_type !== 'purchase' && eventCount(state) % every === 0);
}

/** The model's input, in SESSION_FEATURES order. */
export function sessionFeatures(state: SessionState): number[] {
  let cartValue = 0;
  let cartItems = 0;
  for (const line of state.cart.values()) {
    cartValue += line.units * line.price;
    cartItems += line.units;
  }
  const values: Record<SessionFeatureName, number> = {
    views: state.views,
    carts: state.carts,
    removes: state.removes,
    events: state.views + state.carts + state.removes,
    distinct_products: state.products.size,
    distinct_categories: state.categories.size,
    cart_value: Math.round(cartValue * 100) / 100,
    cart_items: cartItems,
    duration_s: (state.lastEventTime - state.firstEventTime) / 1000,
    mean_view_price: state.views ? state.viewPriceSum / state.views : 0,
    max_view_price: state.viewPriceMax,
    carts_per_view: state.views ? state.carts / state.views : 0,
    removes_per_cart: state.carts ? state.removes / state.carts : 0,
    seconds_since_previous: (state.lastEventTime - state.previousEventTime) / 1000,
  };
  return SESSION_FEATURES.map((name) => values[name]);
}
