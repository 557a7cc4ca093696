import { spawn } from 'node:child_process';
import { featureBalance } from '../../backfill/features.ts';
import { repoRoot } from '../../core/config.ts';
import { sleep } from '../../core/retry.ts';
import type { JobProcess, Scenario, ScenarioContext } from './harness.ts';
import { partitionLeaders } from './stack-faults.ts';

const failures = (ctx: ScenarioContext) => [...ctx.producer().failed.values()].reduce((a, b) => a + b, 0);


async function killAndRestart(ctx: ScenarioContext, job: string): Promise<void> {
  const running = ctx.jobs.get(job)!;
  // mid-flush: right after the job logged a flush or a commit, with the next batch under way
  const marks = () => (running.output().match(/"msg":"(flushed|committed|batch)/g) ?? []).length;
  const before = marks();
  const deadline = Date.now() + 10_000;
  while (marks() === before && Date.now() < deadline) await sleep(50);
  await sleep(Math.floor(Math.random() * 400));
  await running.kill9();
  ctx.note(`killed ${job}`);
  await sleep(2_000);
  ctx.startJob(job);
  await sleep(4_000);
}

/** Seconds from `since` until `job` logs an assignment of all six partitions of its topic (one decimal), or "over 90". */
async function secondsUntilAssigned(job: JobProcess, since: number): Promise<string> {
  const assignedAt = () => {
    const last = [...job.output().matchAll(/"time":"([^"]+)"[^\n]*"msg":"partitions assigned"[^\n]*"partitions":\[([\d,]*)\]/g)].at(-1);
    const at = last ? Date.parse(last[1]!) : Number.NaN;
    return last && last[2]!.split(',').length === 6 && at >= since ? at : undefined;
  };
  const deadline = since + 90_000;
  while (assignedAt() === undefined && Date.now() < deadline) await sleep(100);
  const at = assignedAt();
  return at === undefined ? 'over 90' : ((at - since) / 1000).toFixed(1);
}

/** A command line of the project run to its end: its exit code and the last lines it printed. */
function runCommand(script: string, args: string[]): Promise<{ code: number | null; tail: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4_000); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('close', (code) => resolve({ code, tail: output.trim().split('\n').slice(-3).join(' | ') }));
  });
}

/** A server of the stack killed for 30 s, then started again by the stack's own command. */
function serverDown(daemon: string, server: string, expected: string): Scenario {
  return {
    id: daemon,
    name: `${server} down for 30 s`,
    expected,
    async run(ctx) {
      ctx.faults.kill(daemon);
      ctx.note(`${daemon} killed`);
      await sleep(30_000);
      await ctx.faults.heal();
    },
  };
}

export const scenarios: Scenario[] = [
  {
    id: 'broker',
    name: 'kill -9 one broker (RF 3, minISR 2, acks=all)',
    expected: 'flow continues; 0 lost, 0 duplicates',
    async run(ctx) {
      // the broker leading most of the input's partitions, so leadership really moves
      const counts = new Map<number, number>();
      for (const leader of await partitionLeaders(ctx.config, ctx.names.topic.transactions)) counts.set(leader, (counts.get(leader) ?? 0) + 1);
      const victim = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
      ctx.faults.kill(`kafka-${victim}`);
      ctx.note(`killed kafka-${victim} (leader of ${counts.get(victim)} of 6 partitions)`);
      const acked = ctx.producer().acknowledged;
      // Longer than a failover: the controller moves the victim's leaderships after the broker
      // session timeout (9 s), and a transaction that holds records for those partitions waits for
      // them, so every acknowledgement waits that long (10.3 s quiet, 14.7 s on a loaded machine).
      await sleep(30_000);
      const during = ctx.producer().acknowledged - acked;
      ctx.note(`${during} records acknowledged while it was down`);
      await ctx.faults.heal();
    },
    check: (row) => (row.notes.some((note) => /^0 records acknowledged while/.test(note)) ? 'the flow stopped' : undefined),
  },
  {
    id: 'controller',
    name: 'kill the active controller',
    expected: 'a new controller is elected; 0 lost, 0 duplicates',
    async run(ctx) {
      const controller = await ctx.faults.activeController();
      ctx.faults.kill(`kafka-${controller}`);
      await sleep(5_000);
      const elected = await ctx.faults.activeController();
      ctx.note(`controller ${controller} killed, ${elected} elected`);
      await sleep(8_000);
      await ctx.faults.heal();
    },
    check: (row) => {
      const match = row.notes.map((note) => /^controller (\d+) killed, (\d+) elected/.exec(note)).find(Boolean);
      return match && match[1] !== match[2] ? undefined : 'no new controller';
    },
  },
  {
    id: 'two-brokers',
    name: 'kill 2 of 3 brokers, restore one, then the other',
    expected: 'writes stop with visible errors, nothing acknowledged is lost; resumes by itself; 0 lost, 0 duplicates',
    async run(ctx) {
      const [first, second] = ctx.faults.nodes.filter((node) => node !== 1);
      ctx.faults.kill(`kafka-${first}`);
      ctx.faults.kill(`kafka-${second}`);
      ctx.note(`killed kafka-${first} and kafka-${second}`);
      const failedBefore = failures(ctx);
      await sleep(30_000);
      ctx.note(`${failures(ctx) - failedBefore} sends failed while 2 were down`);
      await ctx.faults.heal([first!]);
      ctx.note(`kafka-${first} back`);
      await sleep(10_000);
      await ctx.faults.heal([second!]);
    },
    check: (row) => ([...row.producer.failed.values()].reduce((a, b) => a + b, 0) > 0 || row.producer.blockedSeconds > 5 ? undefined : 'the outage was not visible to the producer'),
  },
  {
    id: 'rf1',
    name: "RF 1 topic, kill its leader's broker",
    expected: 'loss of availability of that topic, reported with its offline partitions; the RF 3 pipeline unaffected',
    async run(ctx) {
      const topic = `${ctx.names.namespace}.rf1`;
      ctx.extraTopics.push(topic);
      await ctx.admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
      await sleep(2_000);
      const before = await partitionLeaders(ctx.config, topic);
      const victim = before[0]!;
      ctx.faults.kill(`kafka-${victim}`);
      // past broker.session.timeout.ms (9 s): the controller has fenced the broker by then
      await sleep(12_000);
      const after = await partitionLeaders(ctx.config, topic);
      const offline = after.flatMap((leader, partition) => (leader < 0 || leader === victim ? [partition] : []));
      ctx.note(`kafka-${victim} killed: ${topic} partitions [${offline.join(', ')}] offline (leaders before: ${before.join(', ')}; after: ${after.join(', ')})`);
      await sleep(5_000);
      await ctx.faults.heal();
      await sleep(3_000);
      const healed = await partitionLeaders(ctx.config, topic);
      ctx.note(`after restart: leaders ${healed.join(', ')}`);
    },
    check: (row) => (row.notes.some((note) => /partitions \[\d[\d, ]*\] offline/.test(note)) ? undefined : 'no offline partition reported'),
  },
  serverDown('minio', 'MinIO', 'the sink backs off and pauses; no loss, no duplicates, memory bounded'),
  serverDown('redis', 'Redis', 'the feature sink backs off; counts exact after recovery'),
  {
    id: 'jobs',
    name: 'kill -9 each job mid-flush',
    expected: 'exactly-once holds',
    async run(ctx) {
      for (const job of ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-counts-redis-sink']) await killAndRestart(ctx, job);
    },
  },
  {
    id: 'rebalance',
    name: 'a second backup-job instance joins and leaves while flushing; instance 0 killed -9 and restarted; a third killed -9 for good',
    expected: '0 lost, 0 duplicates; hand-over and restart in seconds',
    async run(ctx) {
      const job = 'transactions-job-backup';
      const second = ctx.startJob(job, '1');
      await sleep(12_000);
      let since = Date.now();
      const code = await second.terminate();
      ctx.note(`instance 1 stopped cleanly (exit ${code}); instance 0 owned every partition ${await secondsUntilAssigned(ctx.jobs.get(job)!, since)} s later`);
      await ctx.jobs.get(job)!.kill9();
      since = Date.now();
      const restarted = ctx.startJob(job);
      ctx.note(`instance 0 killed -9 and started again: its partitions back after ${await secondsUntilAssigned(restarted, since)} s (session timeout 45 s)`);
      const third = ctx.startJob(job, '2');
      await sleep(8_000);
      await third.kill9();
      // a static member that never comes back keeps its partitions for the session timeout
      ctx.note('instance 2 joined and was killed -9 for good: its share waits out its 45 s session');
      await sleep(3_000);
    },
  },
  {
    id: 'zombie',
    name: 'a backup-job instance paused (SIGSTOP) past its session timeout, then resumed beside its successor',
    expected: '0 lost, 0 duplicates',
    async run(ctx) {
      const successor = ctx.startJob('transactions-job-backup', '1');
      await sleep(10_000);
      const paused = ctx.jobs.get('transactions-job-backup')!;
      // it holds a buffer when paused: its next flush comes after the group gave its partitions away
      paused.child.kill('SIGSTOP');
      ctx.note('instance 0 paused with a buffer');
      await sleep(55_000);
      paused.child.kill('SIGCONT');
      ctx.note('instance 0 resumed after 55 s (session timeout 45 s)');
      await sleep(15_000);
      const code = await successor.terminate();
      ctx.note(`instance 1 left (exit ${code}); fenced flushes of instance 0: ${(paused.output().match(/"msg":"fenced/g) ?? []).length}, of instance 1: ${(successor.output().match(/"msg":"fenced/g) ?? []).length}`);
      await sleep(3_000);
    },
  },
  {
    id: 'lake-writers',
    name: 'backfill and compaction again and again beside the sinks, on the hours they write',
    expected: 'every commit lands or is retried; 0 lost, 0 duplicates in transactions; every transaction once in user_transaction_counts',
    jobs: ['user-transaction-counts-lake-sink'],
    async run(ctx) {
      const today = new Date().toISOString().slice(0, 10);
      const namespace = ['--namespace', ctx.names.namespace];
      const until = Date.now() + 60_000;
      const runs = { backfill: 0, backfillFailed: [] as string[], rebases: 0, longestBackfill: 0, compact: 0, compactFailed: [] as string[], merged: 0, compactRetries: 0, skipped: new Map<string, number>() };
      const backfills = (async () => {
        while (Date.now() < until) {
          const startedAt = performance.now();
          const { code, tail } = await runCommand('backfill/cli.ts', [...namespace, '--feature', 'counts', '--from', today, '--report', 'json']);
          runs.backfill++;
          runs.longestBackfill = Math.max(runs.longestBackfill, (performance.now() - startedAt) / 1000);
          if (code !== 0) runs.backfillFailed.push(tail);
          else runs.rebases += Number(/"rebases":(\d+)/.exec(tail)?.[1] ?? 0);
        }
      })();
      const compactions = (async () => {
        for (let round = 0; Date.now() < until; round++) {
          // both tables the writers share: the archive its sink appends to and the backfill reads, and the feature table
          const table = round % 2 ? 'user_transaction_counts' : 'transactions';
          const { code, tail } = await runCommand('backfill/compact-cli.ts', [...namespace, '--table', table, '--dt', today, '--include-open-hour']);
          runs.compact++;
          if (code !== 0) runs.compactFailed.push(tail);
          else runs.merged += Number(/(\d+) files merged/.exec(tail)?.[1] ?? 0);
          for (const [, retries] of tail.matchAll(/(\d+) commits? made again/g)) runs.compactRetries += Number(retries);
          // an hour left as it was says why: a compaction that always loses to the sinks shows as 'busy'
          for (const [, reason] of tail.matchAll(/skipped \(([^,]+),/g)) runs.skipped.set(reason!, (runs.skipped.get(reason!) ?? 0) + 1);
        }
      })();
      await Promise.all([backfills, compactions]);
      ctx.note(`${runs.backfill} backfills of ${today} (${runs.backfillFailed.length} failed; ${runs.rebases} commits made again, longest run ${runs.longestBackfill.toFixed(1)} s), ${runs.compact} compactions (${runs.compactFailed.length} failed, ${runs.merged} files merged, ${runs.compactRetries} commits made again${runs.skipped.size ? `; hours skipped: ${[...runs.skipped].map(([reason, n]) => `${n} ${reason}`).join(', ')}` : ''})`);
      for (const failure of [...runs.backfillFailed, ...runs.compactFailed].slice(0, 3)) ctx.note(`failed: ${failure}`);
    },
    check: (row) => {
      if (!row.notes.some((note) => /\(0 failed;.*\), \d+ compactions \(0 failed/.test(note))) return 'a backfill or a compaction failed';
      // giving up is safe (the hour stays as it was) but a compaction that always loses to the sinks never compacts
      if (row.notes.some((note) => /hours skipped:.*\bbusy\b/.test(note))) return 'a compaction gave an hour up: the sinks moved the table on every attempt';
      return undefined;
    },
    async verify(ctx) {
      // the feature table's sink may still be flushing the last counts when the transactions have drained
      const deadline = Date.now() + 60_000;
      let balance = await featureBalance((sql) => ctx.queryLake(sql));
      while ((balance.unmatched || balance.features !== balance.archived) && Date.now() < deadline) {
        await sleep(2_000);
        balance = await featureBalance((sql) => ctx.queryLake(sql));
      }
      ctx.note(`user_transaction_counts: ${balance.features} rows for ${balance.archived} archived transactions, ${balance.unmatched} (user, event time) counts unmatched`);
      return balance.unmatched || balance.features !== balance.archived ? 'user_transaction_counts does not hold each transaction once' : undefined;
    },
  },
];

/**
 * The seeds' experiment: the same broker kill under other replication settings of the
 * pipeline's topics, reporting what stayed available (records acknowledged, sends failed and
 * partitions without a leader while the broker was down) and what was lost.
 */
export function replicationExperiment(factor: number, minInsync: number): Scenario {
  const expected =
    factor === 1
      ? 'partitions on the killed broker offline until it returns; 0 lost'
      : minInsync >= factor
        ? 'writes refused (not enough replicas) until it returns; 0 lost'
        : 'flow continues; 0 lost';
  return {
    id: `rf${factor}-isr${minInsync}`,
    name: `kill -9 one broker, RF ${factor} / min ISR ${minInsync}`,
    expected,
    async run(ctx) {
      const topic = ctx.names.topic.transactions;
      const counts = new Map<number, number>();
      for (const leader of await partitionLeaders(ctx.config, topic)) counts.set(leader, (counts.get(leader) ?? 0) + 1);
      const victim = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
      const acked = ctx.producer().acknowledged;
      const failedBefore = failures(ctx);
      ctx.faults.kill(`kafka-${victim}`);
      await sleep(12_000);
      const offline = (await partitionLeaders(ctx.config, topic)).flatMap((leader, partition) => (leader < 0 || leader === victim ? [partition] : []));
      await sleep(8_000);
      ctx.note(
        `kafka-${victim} down 20 s: ${ctx.producer().acknowledged - acked} acknowledged, ${failures(ctx) - failedBefore} failed, partitions without a leader: [${offline.join(', ')}]`,
      );
      await ctx.faults.heal();
    },
  };
}
