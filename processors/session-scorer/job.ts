import { processorDeclarations } from '../../platform/catalog.ts';
import type { ClientContext } from '../../platform/context.ts';
import { errorMessage } from '../../core/errors.ts';
import type { StreamJob } from '../../core/runtime/index.ts';
import { createProcessorJob, type StoreSpec } from '../../core/runtime/processor.ts';
import { latestModel, type VersionedModel } from '../../ml/model-store.ts';
import { predict } from '../../ml/purchase-model.ts';
import type { ShopEvent } from '../../schemas/shop-events.ts';
import { applyEvent, emptySession, eventCount, isScoringPoint, SCORE_EVERY, SESSION_FEATURES, sessionFeatures, type SessionState } from '../../ml/session-features.ts';

export interface SessionScorerOptions {
  /** Stable id of this process among the scorer's processes (its transactional id). */
  instance?: string;
  /** Score after every this many events of a session, besides every cart and removal (default SCORE_EVERY, as the model was trained). */
  scoreEvery?: number;
  /** Without a model, look for one this often (default 60 s). */
  modelCheckMs?: number;
  /**
   * A session that got no event for this long is forgotten, so state stays bounded (default: the
   * Redis TTL of session features). Wall-clock time, like that TTL: event times of a replay or of
   * a synthetic shop spread over days say nothing about whether a session is still going.
   */
  sessionIdleMs?: number;
}

/** What the scorer keeps of a session, as its changelog record holds it. */
interface Scored {
  state: SessionState;
  lastProbability: number;
  ended: boolean;
}

/** SessionState as JSON: sets and maps as arrays, 64-bit ids as strings. */
function serialise(scored: Scored): string {
  const { state } = scored;
  return JSON.stringify({
    ...state,
    user_id: String(state.user_id),
    cart: [...state.cart],
    products: [...state.products],
    categories: [...state.categories],
    lastProbability: scored.lastProbability,
    ended: scored.ended,
  });
}

function deserialise(json: string): Scored {
  const raw = JSON.parse(json) as Record<string, unknown>;
  const userId = BigInt(raw.user_id as string);
  const state = {
    ...(raw as unknown as SessionState),
    user_id: userId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(userId) : userId,
    cart: new Map(raw.cart as Array<[string, { units: number; price: number }]>),
    products: new Set(raw.products as string[]),
    categories: new Set(raw.categories as string[]),
  };
  return { state, lastProbability: Number(raw.lastProbability), ended: Boolean(raw.ended) };
}

const CART_VALUE = SESSION_FEATURES.indexOf('cart_value');
const DURATION = SESSION_FEATURES.indexOf('duration_s');

/**
 * Scores shop sessions live, exactly once. Per session it keeps the aggregates of
 * `features.ts` (the code the model was trained with), scores with the newest model under
 * models/purchase/ after every cart or removal and every `scoreEvery` events, and records a
 * purchase, which ends the session's scoring. Each batch is one Kafka transaction holding the
 * predictions, the changed session states (a compacted changelog, co-partitioned with
 * shop-events) and the offsets; state is restored from the changelog on assignment, so a kill -9
 * neither loses nor repeats a prediction. Without a model yet it keeps state and scores nothing,
 * looking for one every minute; SIGHUP makes it look at once.
 */
export function createSessionScorer(context: ClientContext, options: SessionScorerOptions = {}): StreamJob {
  const { catalog, log } = context;
  const declaration = processorDeclarations.sessionScorer;
  const name = catalog.group(declaration.name);
  const output = catalog.topic[declaration.outputs[0]];
  const scoreEvery = options.scoreEvery ?? SCORE_EVERY;
  const modelCheckMs = options.modelCheckMs ?? 60_000;
  const modelRoot = `${catalog.roots.models}/purchase`;
  const sessions: StoreSpec<Scored> = {
    changelog: catalog.topic[declaration.stores.sessions],
    encode: (session, scored, eventTime) => ({ user_session: session, state: serialise(scored), event_time: eventTime }),
    decode: (record) => deserialise(String(record.state)),
    // Forget sessions idle for this long (default: the Redis TTL of session features), so state
    // stays bounded. Wall-clock time, like that TTL: event times of a replay or of a synthetic
    // shop spread over days say nothing about whether a session is still going.
    idleMs: options.sessionIdleMs ?? (catalog.features.sessionScores.ttlSeconds ?? 7_200) * 1000,
  };
  const stats = { scored: 0, purchases: 0, modelVersion: 0 };
  let model: VersionedModel | undefined;
  let modelCheckedAt = 0;

  async function refreshModel(force = false): Promise<void> {
    if (!force && (model || Date.now() - modelCheckedAt < modelCheckMs)) return;
    modelCheckedAt = Date.now();
    const found = await latestModel(context.objectStore(), modelRoot);
    if (found && found.version !== model?.version) {
      model = found;
      stats.modelVersion = found.version;
      log.info('model loaded', { job: name, version: found.version, kind: found.kind });
    } else if (!found && !model) {
      log.warn('no model yet: keeping session state, scoring nothing; run `pnpm run train`', { job: name, root: modelRoot });
    }
  }

  return createProcessorJob<ShopEvent, { sessions: StoreSpec<Scored> }>(
    { name, input: catalog.topic[declaration.input], instance: options.instance, stores: { sessions } },
    context,
    () => ({
      beforeBatch: () => refreshModel().catch((error) => log.warn('looking for a model failed', { job: name, error: errorMessage(error) })),
      process(event, { stores, forward }) {
        const store = stores.sessions;
        const scored = store.get(event.user_session) ?? { state: emptySession(event), lastProbability: 0, ended: false };
        // a purchase ended the session's scoring; later events change nothing
        if (scored.ended) return store.touch(event.user_session);
        applyEvent(scored.state, event);
        store.put(event.user_session, scored, event.event_time);
        const purchase = event.event_type === 'purchase';
        const events = eventCount(scored.state);
        if (!purchase && !(model && isScoringPoint(scored.state, event, scoreEvery))) return;
        const features = sessionFeatures(scored.state);
        if (purchase) {
          scored.ended = true;
          stats.purchases++;
        } else {
          scored.lastProbability = predict(model!, features);
          stats.scored++;
        }
        return forward(output, event.user_session, {
          user_session: event.user_session,
          user_id: event.user_id,
          kind: purchase ? 'purchase' : 'score',
          purchase_probability: scored.lastProbability,
          model_version: model?.version ?? 0,
          events,
          views: scored.state.views,
          carts: scored.state.carts,
          removes: scored.state.removes,
          cart_value: features[CART_VALUE]!,
          duration_s: features[DURATION]!,
          event_time: event.event_time,
        });
      },
      reload: () => refreshModel(true),
      stats: () => ({ ...stats }),
    }),
  );
}
