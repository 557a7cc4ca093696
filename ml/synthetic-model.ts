import { createShop } from '../ingest/shop-events/generator.ts';
import { applyEvent, emptySession, SESSION_FEATURES, sessionFeatures } from './session-features.ts';
import { trainLogistic, type LogisticModel } from './purchase-model.ts';

/**
 * A logistic purchase model trained on the synthetic shop's sessions of `seed` (one point per
 * browse event, labelled with the session's purchase), for tests and benchmarks that need a
 * scorer with a real model without a lake to train from. `pnpm run train` is the real thing.
 */
export function trainOnSyntheticShop(options: { seed: number; sessions: number; epochs: number; now?: number }): LogisticModel {
  const shop = createShop({ seed: options.seed, ...(options.now ? { now: options.now } : {}) });
  const X: number[][] = [];
  const y: number[] = [];
  for (let s = 0; s < options.sessions; s++) {
    const session = shop.nextSession();
    const state = emptySession(session.browse[0]!);
    for (const event of session.browse) {
      applyEvent(state, event);
      X.push(sessionFeatures(state));
      y.push(session.purchases.length ? 1 : 0);
    }
  }
  return trainLogistic([...SESSION_FEATURES], X, y, { epochs: options.epochs });
}
