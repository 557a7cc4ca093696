import { arg, cliArgs, defineCommand, option, runCli } from '../core/cli.ts';
import { loadConfig } from '../core/config.ts';
import { errorMessage } from '../core/errors.ts';
import { LatencyRecorder, formatCount } from '../core/stats.ts';
import { runShopEventsCli } from './shop-events/cli.ts';
import { createTransactionGenerator } from './transactions/generator.ts';
import { createTransactionsProducer } from './transactions/producer.ts';
import { kafkaUserOf, producerJob } from '../platform/access.ts';
import { asKafkaUser } from '../core/kafka.ts';

const command = defineCommand({
  name: 'producer',
  usage: ['pnpm run producer -- transactions [options]', 'pnpm run producer -- shop-events [options]   (see pnpm run producer -- shop-events --help)'],
  description: `Generates realistic fake transactions and publishes them as Avro (through the schema registry)
to Kafka in transactions (acks=all), keyed by user_id; each send resolves when its transaction commits.`,
  positionals: true,
  options: {
    count: option('N', 'records to send (default 10000; with --duration, no limit)', arg.nonNegative().optional()),
    rate: option('R', 'records per second, 0 = as fast as possible', arg.nonNegative().default(0)),
    duration: option('S', 'stop after S seconds', arg.nonNegative().optional()),
    users: option('U', 'distinct users, Zipf-skewed', arg.positiveInteger().default(1000)),
    seed: option('S', 'seed of the generator; the same seed gives the same records (default: random, printed)', arg.nonNegative().optional()),
    days: option('D', 'send D past days of history, oldest first (event times up to 2 min out of order), so backfill has history (default 0: now)', arg.nonNegative().default(0)),
    topic: option('T', 'topic', arg.text().default('transactions')),
    batch: option('B', 'records per send call', arg.positiveInteger().default(2000)),
  },
});

async function main(): Promise<void> {
  if (cliArgs().find((word) => !word.startsWith('-')) === 'shop-events') return runShopEventsCli(cliArgs());
  const args = command.parse();
  if (!args) return;
  const { values, positionals } = args;
  const dataset = positionals[0];
  if (dataset !== 'transactions') return command.refuse(dataset ? `unknown data set ${JSON.stringify(dataset)}` : 'name a data set');
  const durationS = values.duration;
  const count = values.count ?? (durationS === undefined ? 10_000 : Number.POSITIVE_INFINITY);
  const { rate, users, batch } = values;
  const seed = values.seed ?? Math.floor(Math.random() * 2 ** 31);
  const config = asKafkaUser(loadConfig(), kafkaUserOf(producerJob('transactions')));

  const producer = await createTransactionsProducer(config, { topic: values.topic });
  // history is sent in event-time order: spread over the records to send, so their number must be known
  const records = Number.isFinite(count) ? count : rate && durationS !== undefined ? rate * durationS : undefined;
  if (values.days > 0 && records === undefined) return command.refuse('--days with --duration needs --count or --rate: the history is spread in event-time order over the records to send');
  const next = createTransactionGenerator({ users, seed, spreadDays: values.days, records });
  console.error(`producer: ${producer.topic} (schema id ${producer.schemaId}), seed ${seed}, ${users} users${rate ? `, ${rate}/s` : ''}`);

  const latency = new LatencyRecorder();
  const started = Date.now();
  const deadline = durationS === undefined ? Number.POSITIVE_INFINITY : started + durationS * 1000;
  let generated = 0;
  let sent = 0;
  let failed = 0;
  let bytes = 0;
  let stopping = false;
  process.once('SIGINT', () => (stopping = true));
  process.once('SIGTERM', () => (stopping = true));

  const progress = setInterval(() => {
    const seconds = (Date.now() - started) / 1000;
    const total = Number.isFinite(count) ? ` / ${formatCount(count)}` : '';
    process.stderr.write(
      `\rsent ${formatCount(sent)}${total}  ${formatCount(sent / seconds)} rec/s  ${(bytes / seconds / 1e6).toFixed(2)} MB/s  failed ${failed}   `,
    );
  }, 1000);

  // Several sends in flight keep the client's batches full; each is awaited for its latency.
  const inFlight = new Set<Promise<void>>();
  const maxInFlight = 16;
  try {
    while (!stopping && generated < count && Date.now() < deadline) {
      const size = Math.min(batch, count - generated, rate ? Math.max(1, Math.floor(rate / 10)) : batch);
      const records = Array.from({ length: size }, next);
      generated += size;
      if (rate) {
        const due = started + (generated / rate) * 1000;
        if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      }
      const sentAt = performance.now();
      const task = producer
        .send(records)
        .then((outcome) => {
          latency.record(performance.now() - sentAt, outcome.sent);
          sent += outcome.sent;
          bytes += outcome.bytes;
          failed += outcome.refused.length;
          for (const { reason } of outcome.refused) console.error(`\nproducer: refused ${reason}`);
        })
        .catch((error: unknown) => {
          failed += size;
          console.error(`\nproducer: ${errorMessage(error)}`);
        })
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
      if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    clearInterval(progress);
    await producer.close();
  }
  const seconds = (Date.now() - started) / 1000;
  const l = latency.summary();
  process.stderr.write('\n');
  console.log(
    `sent ${formatCount(sent)}, failed ${formatCount(failed)}, ${formatCount(sent / seconds)} records/s, ` +
      `${(bytes / seconds / 1e6).toFixed(2)} MB/s, latency p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, in ${seconds.toFixed(1)} s, ` +
      `peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );
  if (failed) process.exitCode = 1;
}

runCli('producer', main);
