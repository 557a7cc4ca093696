import type { DuckDBConnection } from '@duckdb/node-api';
import type { ShopEvent } from '../schemas/shop-events.ts';
import { applyEvent, emptySession, isScoringPoint, sessionFeatures } from './session-features.ts';

export interface TrainingSet {
  /** One row per scoring point (the scorer's, `isScoringPoint`): the session's features as of that event. */
  X: number[][];
  /** 1 if the session purchased after that point. */
  y: number[];
  /** The session of each row, so a split never puts one session on both sides. */
  sessions: string[];
  sessionCount: number;
  firstEventTime: number;
  lastEventTime: number;
}

/**
 * Reads the archived shop events session by session in time order (DuckDB streams them from the
 * lake, chunk by chunk) and replays each session through the scorer's own feature code. The
 * scoring points are the scorer's own (`isScoringPoint`) before the session's first purchase (a
 * purchase ends scoring), so the model learns from the moments it will be asked about; a label is
 * whether a purchase came later. Features are as of the point only, so nothing from the future
 * leaks in.
 */
export async function buildTrainingSet(db: DuckDBConnection, view = 'shop_events'): Promise<TrainingSet> {
  const set: TrainingSet = { X: [], y: [], sessions: [], sessionCount: 0, firstEventTime: Number.POSITIVE_INFINITY, lastEventTime: 0 };
  const result = await db.stream(`SELECT event_time, event_type, product_id, category_id, price, user_id, user_session FROM ${view} ORDER BY user_session, event_time, event_type = 'purchase'`);
  let session: string | undefined;
  let events: ShopEvent[] = [];
  const finish = () => {
    if (!events.length) return;
    set.sessionCount++;
    const firstPurchase = events.findIndex((e) => e.event_type === 'purchase');
    const scored = firstPurchase === -1 ? events : events.slice(0, firstPurchase);
    const label = firstPurchase === -1 ? 0 : 1;
    const state = emptySession(events[0]!);
    for (const event of scored) {
      applyEvent(state, event);
      if (!isScoringPoint(state, event)) continue;
      set.X.push(sessionFeatures(state));
      set.y.push(label);
      set.sessions.push(session!);
    }
  };
  for await (const rows of result.yieldRowObjectJs()) {
    for (const row of rows) {
      const event = {
        event_time: Number(row.event_time),
        event_type: row.event_type as ShopEvent['event_type'],
        product_id: row.product_id as bigint,
        category_id: row.category_id as bigint,
        category_code: null,
        brand: null,
        price: Number(row.price),
        user_id: row.user_id as bigint,
        user_session: String(row.user_session),
      } satisfies ShopEvent;
      if (event.user_session !== session) {
        finish();
        session = event.user_session;
        events = [];
      }
      events.push(event);
      set.firstEventTime = Math.min(set.firstEventTime, event.event_time);
      set.lastEventTime = Math.max(set.lastEventTime, event.event_time);
    }
  }
  finish();
  return set;
}
