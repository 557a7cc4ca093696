import { avroCodec, type AvroCodec } from '../../core/avro.ts';
import { processorDeclarations } from '../../core/catalog.ts';
import { evictIdle, restoreKeyedState } from '../../core/changelog.ts';
import type { ClientContext } from '../../core/context.ts';
import { errorMessage } from '../../core/errors.ts';
import { createStreamJob, type StreamJob } from '../../core/runtime/index.ts';
import { latestModel, type VersionedModel } from '../../ml/model-store.ts';
import { predict } from '../../ml/purchase-model.ts';
import type { ShopEvent } from '../../schemas/shop-events.ts';
import { applyEvent, emptySession, eventCount, isScoringPoint, SCORE_EVERY, SESSION_FEATURES, sessionFeatures, type SessionState } from './features.ts';

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
  /** When this process last saw an event of the session (or restored it); not in the changelog. */
  touchedAt: number;
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
  return { state, lastProbability: Number(raw.lastProbability), ended: Boolean(raw.ended), touchedAt: Date.now() };
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
  const output = catalog.topic[declaration.output];
  const stateTopic = catalog.topic[declaration.state];
  const scoreEvery = options.scoreEvery ?? SCORE_EVERY;
  const modelCheckMs = options.modelCheckMs ?? 60_000;
  const modelRoot = `${catalog.roots.models}/purchase`;
  const sessionIdleMs = options.sessionIdleMs ?? (catalog.features.sessionScores.ttlSeconds ?? 7_200) * 1000;
  let sweptAt = Date.now();
  const sessions = new Map<number, Map<string, Scored>>();
  const stats = { scored: 0, purchases: 0, modelVersion: 0, restoredSessions: 0, evictedSessions: 0 };
  let codecs: { prediction: AvroCodec; state: AvroCodec } | undefined;
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

  async function restore(partitions: number[]): Promise<void> {
    const { states } = await restoreKeyedState(context, stateTopic, partitions, {
      key: String,
      value: (record) => deserialise(String(record.state)),
    });
    for (const [partition, map] of states) {
      sessions.set(partition, map);
      stats.restoredSessions += map.size;
    }
  }

  return createStreamJob({ name, topic: catalog.topic[declaration.input], commit: 'transaction', transactionalId: `${name}-${options.instance ?? '0'}` }, context, () => ({
    async handle(batches, batchContext) {
      codecs ??= {
        prediction: await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${output}-value`)),
        state: await avroCodec(context.registry, await context.registry.getLatestSchemaId(`${stateTopic}-value`)),
      };
      await refreshModel().catch((error) => log.warn('looking for a model failed', { job: name, error: errorMessage(error) }));
      const sweep = Date.now() - sweptAt >= sessionIdleMs / 4;
      for (const batch of batches) {
        if (!sessions.has(batch.partition)) await restore([batch.partition]);
        const map = sessions.get(batch.partition)!;
        const changed = new Map<string, { scored: Scored; eventTime: number }>();
        for (const record of batch.records) {
          const event = record.value as unknown as ShopEvent;
          let scored = map.get(event.user_session);
          if (!scored) {
            scored = { state: emptySession(event), lastProbability: 0, ended: false, touchedAt: 0 };
            map.set(event.user_session, scored);
          }
          scored.touchedAt = Date.now();
          // a purchase ended the session's scoring; later events change nothing
          if (scored.ended) continue;
          applyEvent(scored.state, event);
          changed.set(event.user_session, { scored, eventTime: event.event_time });
          const purchase = event.event_type === 'purchase';
          const events = eventCount(scored.state);
          if (!purchase && !(model && isScoringPoint(scored.state, event, scoreEvery))) continue;
          const features = sessionFeatures(scored.state);
          if (purchase) {
            scored.ended = true;
            stats.purchases++;
          } else {
            scored.lastProbability = predict(model!, features);
            stats.scored++;
          }
          const produced = batchContext.produce(output, {
            key: event.user_session,
            partition: batch.partition,
            value: codecs.prediction.encodeTransient({
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
            }),
          });
          if (produced) await produced;
        }
        for (const [session, { scored, eventTime }] of changed) {
          const produced = batchContext.produce(stateTopic, {
            key: session,
            partition: batch.partition,
            value: codecs.state.encodeTransient({ user_session: session, state: serialise(scored), event_time: eventTime }),
          });
          if (produced) await produced;
        }
      }
      // Forget sessions idle for longer than sessionIdleMs, in every assigned partition: a
      // tombstone in the same transaction removes them from the changelog too. Swept every
      // quarter of that period, when records come (without records, state does not grow).
      if (sweep) {
        stats.evictedSessions += await evictIdle(sessions, sessionIdleMs, (session, partition) => batchContext.produce(stateTopic, { key: session, partition, value: null }));
        sweptAt = Date.now();
      }
    },
    assigned: (partitions) => restore(partitions),
    revoked: async (partitions) => partitions.forEach((p) => sessions.delete(p)),
    // a sweep may have touched every partition's state, not only the batch's: rebuild them all
    aborted: () => sessions.clear(),
    reload: () => refreshModel(true),
    stats: () => ({ ...stats }),
  }));
}
