import assert from 'node:assert/strict';
import { test } from 'node:test';
import { topicDeclarations } from '../../../platform/catalog.ts';
import { readPartitionsToEnd } from '../../../core/changelog.ts';
import { registerAvro } from '../../../core/registry.ts';
import { createProcessorJob, type StoreSpec } from '../../../core/runtime/processor.ts';
import { createShop } from '../../../ingest/shop-events/generator.ts';
import { createTopicProducer } from '../../../ingest/topic-producer.ts';
import type { ShopEvent } from '../../../schemas/shop-events.ts';
import { cleanupTopics, config, onCleanup, waitFor } from '../../helpers.ts';
import { setupPipeline } from '../../pipeline/fixture.ts';

/**
 * The walk-through of docs/decisions/0007: a new stateful processor is its store declaration and
 * a handler. This one counts the product views of each shop session and emits the running
 * count with every view; the runtime restores the counts, writes each changed session to the
 * changelog once per batch, and keeps all of it in each batch's transaction.
 */
function sessionViewCounter(names: { input: string; output: string; changelog: string }) {
  const views: StoreSpec<number> = {
    changelog: names.changelog,
    encode: (session, count, eventTime) => ({ user_session: session, views: count, event_time: eventTime }),
    decode: (record) => Number(record.views),
  };
  return { input: names.input, stores: { views } };
}

const COUNT_SCHEMA = JSON.stringify({
  type: 'record',
  name: 'SessionViews',
  namespace: 'lakestream.example',
  fields: [
    { name: 'user_session', type: 'string' },
    { name: 'views', type: 'long' },
    { name: 'event_time', type: 'long' },
  ],
});

test('runtime: an example processor (one store declaration plus a handler) counts every view once across a restart that restores its store', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'example-processor');
  const input = pipeline.names.topic.shopEvents;
  const output = `${pipeline.namespace}.session-view-counts`;
  const changelog = `${output}-state`;
  cleanupTopics(t, pipeline.admin, [output, changelog]);
  await pipeline.admin.createTopics({ topics: [output], partitions: 6, replicas: 3 });
  await pipeline.admin.createTopics({ topics: [changelog], partitions: 6, replicas: 3, configs: [{ name: 'cleanup.policy', value: 'compact' }] });
  for (const topic of [output, changelog]) await registerAvro(pipeline.registry, `${topic}-value`, COUNT_SCHEMA);

  const declaration = sessionViewCounter({ input, output, changelog });
  const start = async () => {
    const job = createProcessorJob<ShopEvent, typeof declaration.stores>(
      { name: `${pipeline.namespace}.session-view-counter`, input: declaration.input, stores: declaration.stores },
      pipeline.context,
      () => ({
        process(event, { stores, forward }) {
          if (event.event_type !== 'view') return;
          const views = (stores.views.get(event.user_session) ?? 0) + 1;
          stores.views.put(event.user_session, views, event.event_time);
          return forward(output, event.user_session, { user_session: event.user_session, views, event_time: event.event_time });
        },
      }),
    );
    onCleanup(t, () => job.stop());
    await job.start();
    return job;
  };

  const producer = await createTopicProducer(config, { ...topicDeclarations.shopEvents, name: input });
  onCleanup(t, () => producer.close());
  const shop = createShop({ seed: 5, users: 50, now: Date.UTC(2026, 10, 20, 12) });
  const sessions = Array.from({ length: 60 }, () => shop.nextSession());
  // each session's events split in two halves: the second half is counted by a restarted job
  const halves = [sessions.flatMap((s) => s.browse.slice(0, Math.ceil(s.browse.length / 2))), sessions.flatMap((s) => s.browse.slice(Math.ceil(s.browse.length / 2)))];
  const expected = new Map<string, number>();
  for (const event of halves.flat()) if (event.event_type === 'view') expected.set(event.user_session, (expected.get(event.user_session) ?? 0) + 1);
  const viewEvents = [...expected.values()].reduce((a, b) => a + b, 0);

  const readOutput = async () => {
    const last = new Map<string, number>();
    let records = 0;
    await readPartitionsToEnd(config, output, [0, 1, 2, 3, 4, 5], async (message) => {
      const { value } = await pipeline.context.decode(message.value);
      records++;
      last.set(String(value.user_session), Number(value.views));
    });
    return { last, records };
  };
  const firstHalfViews = halves[0]!.filter((e) => e.event_type === 'view').length;

  await producer.send(halves[0]!);
  const first = await start();
  await waitFor('the first half counted', async () => ((await readOutput()).records === firstHalfViews ? true : undefined), 120_000, 1_000);
  await first.stop();

  await producer.send(halves[1]!);
  const second = await start();
  await waitFor('every view counted', async () => ((await readOutput()).records >= viewEvents ? true : undefined), 120_000, 1_000);
  await second.stop();

  const { last, records } = await readOutput();
  assert.equal(records, viewEvents, 'one output record per view, none twice');
  assert.deepEqual(Object.fromEntries([...last].sort()), Object.fromEntries([...expected].sort()), "each session's count went on from the restored store");
  const stores = (second.stats() as unknown as { stores: { views: { restored: number } } }).stores;
  assert.ok(stores.views.restored > 0, 'the second job restored the counts from the changelog');
});
