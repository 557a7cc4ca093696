import { createWriteStream } from 'node:fs';
import { basename } from 'node:path';
import { catalog, topicDeclarations } from '../../platform/catalog.ts';
import { arg, defineCommand, option } from '../../core/cli.ts';
import { loadConfig } from '../../core/config.ts';
import { sleep } from '../../core/retry.ts';
import { formatCount } from '../../core/stats.ts';
import type { ShopEvent } from '../../schemas/shop-events.ts';
import { createTopicProducer, type TopicProducer } from '../topic-producer.ts';
import { kafkaUserOf, producerJob } from '../../platform/access.ts';
import { asKafkaUser } from '../../core/kafka.ts';
import { readShopCsv } from './csv.ts';
import { createShop } from './generator.ts';

const synthetic = { group: 'Synthetic shop' };
const replay = { group: 'Replay (--from-csv)' };
const command = defineCommand({
  name: 'producer',
  usage: ['pnpm run producer -- shop-events [options]                 a synthetic shop', 'pnpm run producer -- shop-events --from-csv FILE[.gz] [options] replay the public data set\'s files'],
  description: `Publishes click events (view, cart, remove_from_cart, purchase) as Avro to shop-events, keyed by
user_session, with transactional acks=all producers. The synthetic shop runs two producers, as a
web shop would: one for browsing (view, cart, remove_from_cart) and a checkout producer whose
purchase events follow a session's browse events once those are acknowledged.`,
  positionals: true,
  options: {
    sessions: option('N', 'sessions to simulate', arg.nonNegative().default(1_000), synthetic),
    rate: option('R', 'events per second, 0 = as fast as possible', arg.nonNegative().default(0), synthetic),
    seed: option('S', 'the same seed gives the same catalogue and sessions (default: random, printed)', arg.nonNegative().optional(), synthetic),
    users: option('U', 'distinct shoppers', arg.positiveInteger().default(5_000), synthetic),
    days: option('D', 'spread session starts over the past D days (default 0: the last hour)', arg.nonNegative().default(0), synthetic),
    'from-csv': option('FILE', 'replay this file of the public data set (.csv or .csv.gz)', arg.nonEmpty().optional(), replay),
    speedup: option('X', 'replay X times faster than the events happened (default: as fast as possible)', arg.nonNegative().optional(), replay),
    rejects: option('FILE', 'where malformed lines go, with line number and reason (default ./<file name>.rejected.csv)', arg.nonEmpty().optional(), replay),
    topic: option('T', 'topic (default shop-events)', arg.nonEmpty().optional(), { group: 'Both' }),
  },
  footer: `A line of the files becomes: empty category_code/brand -> null; a 19-digit category_id -> an
exact 64-bit long; an empty user_session, a negative price or a malformed value -> the rejects
file; exact duplicate lines -> sent as they are (the source recorded them twice).`,
});

/** Sends and accounts: refused records are reported, a delivery failure ends the run. */
function sender(producer: TopicProducer, totals: { sent: number; refused: number }) {
  return async (events: ShopEvent[]) => {
    if (!events.length) return;
    const outcome = await producer.send(events);
    totals.sent += outcome.sent;
    totals.refused += outcome.refused.length;
    for (const { reason } of outcome.refused) console.error(`\nproducer: refused ${reason}`);
  };
}

export async function runShopEventsCli(args: string[]): Promise<void> {
  const parsed = command.parse(args);
  if (!parsed) return;
  const { values } = parsed;
  const config = asKafkaUser(loadConfig(), kafkaUserOf(producerJob('shopEvents')));
  const topic = { ...topicDeclarations.shopEvents, name: values.topic ?? catalog().topic.shopEvents };
  const totals = { sent: 0, refused: 0 };
  const started = Date.now();
  let stopping = false;
  process.once('SIGINT', () => (stopping = true));
  process.once('SIGTERM', () => (stopping = true));

  if (values['from-csv']) {
    const file = values['from-csv'];
    const speedup = values.speedup ?? 0;
    const rejectsFile = values.rejects ?? `${basename(file).replace(/\.gz$/, '')}.rejected.csv`;
    const producer = await createTopicProducer(config, topic, { clientId: 'lakestream-shop-replay' });
    const send = sender(producer, totals);
    const reader = readShopCsv(file);
    const rejects = createWriteStream(rejectsFile);
    rejects.write('line,reason,text\n');
    let rejected = 0;
    let lines = 0;
    let firstEventTime: number | undefined;
    const quote = (text: string) => `"${text.replaceAll('"', '""')}"`;
    const progress = setInterval(() => {
      const { bytesRead, bytesTotal } = reader.progress();
      const seconds = (Date.now() - started) / 1000;
      process.stderr.write(
        `\r${((100 * bytesRead) / Math.max(bytesTotal, 1)).toFixed(1)}% of ${basename(file)}  lines ${formatCount(lines)}  sent ${formatCount(totals.sent)}  rejected ${formatCount(rejected)}  ${formatCount(totals.sent / seconds)} ev/s   `,
      );
    }, 1000);
    console.error(`producer: replaying ${file} to ${producer.topic} (schema id ${producer.schemaId})${speedup ? ` at ${speedup}x` : ''}; rejects to ${rejectsFile}`);
    let batch: ShopEvent[] = [];
    try {
      for await (const line of reader.lines) {
        if (stopping) break;
        lines++;
        if (line.parsed.reject !== undefined) {
          rejected++;
          rejects.write(`${line.lineNumber},${quote(line.parsed.reject)},${quote(line.text)}\n`);
          continue;
        }
        const event = line.parsed.event;
        if (speedup) {
          // The files are in event-time order: each event waits until its time, scaled, has come.
          firstEventTime ??= event.event_time;
          const due = started + (event.event_time - firstEventTime) / speedup;
          if (due > Date.now() + 20) {
            await send(batch);
            batch = [];
            await sleep(due - Date.now());
          }
        }
        batch.push(event);
        if (batch.length >= 5_000) {
          await send(batch);
          batch = [];
        }
      }
      await send(batch);
    } finally {
      clearInterval(progress);
      await new Promise((resolve) => rejects.end(resolve));
      await producer.close();
    }
    process.stderr.write('\n');
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `replayed ${formatCount(lines)} lines: sent ${formatCount(totals.sent)}, rejected ${formatCount(rejected)} (${rejectsFile}), ` +
        `refused ${formatCount(totals.refused)}, ${formatCount(totals.sent / Math.max(seconds, 0.001))} events/s, in ${seconds.toFixed(1)} s`,
    );
    return;
  }

  const { sessions, rate } = values;
  const seed = values.seed ?? Math.floor(Math.random() * 2 ** 31);
  const shop = createShop({ seed, users: values.users, spreadDays: values.days });
  // Two producers on one topic, as a shop's browse and checkout services would be.
  const browse = await createTopicProducer(config, topic, { clientId: 'lakestream-shop-browse' });
  const checkout = await createTopicProducer(config, topic, { clientId: 'lakestream-shop-checkout' });
  const sendBrowse = sender(browse, totals);
  const sendCheckout = sender(checkout, totals);
  console.error(`producer: ${browse.topic} (schema id ${browse.schemaId}), seed ${seed}, ${formatCount(sessions)} sessions${rate ? `, ${rate} events/s` : ''}`);
  const counts: Record<string, number> = { view: 0, cart: 0, remove_from_cart: 0, purchase: 0 };
  let simulated = 0;
  let buyers = 0;
  const progress = setInterval(() => {
    process.stderr.write(`\rsessions ${formatCount(simulated)} / ${formatCount(sessions)}  events ${formatCount(totals.sent)}  ${formatCount(totals.sent / ((Date.now() - started) / 1000))} ev/s   `);
  }, 1000);
  try {
    while (simulated < sessions && !stopping) {
      const chunk = Array.from({ length: Math.min(100, sessions - simulated) }, () => shop.nextSession());
      simulated += chunk.length;
      const browseEvents = chunk.flatMap((s) => s.browse);
      const purchases = chunk.flatMap((s) => s.purchases);
      buyers += chunk.filter((s) => s.purchases.length).length;
      for (const event of [...browseEvents, ...purchases]) counts[event.event_type]!++;
      if (rate) {
        const due = started + ((totals.sent + browseEvents.length + purchases.length) / rate) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      // a session's purchases go out once its browse events are acknowledged, so they follow them in its partition
      await sendBrowse(browseEvents);
      await sendCheckout(purchases);
    }
  } finally {
    clearInterval(progress);
    await Promise.all([browse.close(), checkout.close()]);
  }
  process.stderr.write('\n');
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `sent ${formatCount(totals.sent)} events of ${formatCount(simulated)} sessions (${formatCount(buyers)} bought): ` +
      `${Object.entries(counts).map(([type, n]) => `${type} ${formatCount(n)}`).join(', ')}; refused ${totals.refused}; ` +
      `${formatCount(totals.sent / Math.max(seconds, 0.001))} events/s, in ${seconds.toFixed(1)} s`,
  );
  if (totals.refused) process.exitCode = 1;
}
