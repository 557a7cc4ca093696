import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { loadTableState } from '../../core/iceberg/table.ts';
import { offsetFindings } from '../../sinks/lake/verify.ts';
import { config, onCleanup } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

test('verify rules: lag, nothing archived, a table ahead of its log, retention that outran the sink, another topic id', () => {
  const logs = [
    { partition: 0, logStart: 0, logEnd: 10 },
    { partition: 1, logStart: 0, logEnd: 5 },
    { partition: 2, logStart: 20, logEnd: 30 },
    { partition: 3, logStart: 0, logEnd: 4 },
    { partition: 4, logStart: 0, logEnd: 0 },
  ];
  const found = offsetFindings('t', logs, { topicId: 'A', next: { 0: 10, 1: 3, 2: 15, 3: 9 } }, 'A');
  const at = (partition: number) => found.filter((f) => f.partition === partition);
  assert.deepEqual(at(0), [], 'caught up: nothing to say');
  assert.match(at(1)[0]!.message, /^lag 2/);
  assert.equal(at(1)[0]!.level, 'info');
  assert.equal(at(2)[0]!.level, 'error');
  assert.match(at(2)[0]!.message, /retention outran the sink: offsets 15\.\.19 \(5 offset/);
  assert.equal(at(3)[0]!.level, 'error');
  assert.match(at(3)[0]!.message, /beyond the log's end 4/);
  assert.deepEqual(at(4), [], 'an empty partition with nothing archived is fine');
  const recreated = offsetFindings('t', logs, { topicId: 'A', next: { 0: 10 } }, 'B');
  assert.equal(recreated.length, 1);
  assert.equal(recreated[0]!.level, 'error');
});

test('pnpm run lake -- verify: clean after the sink, exit 1 once retention deletes records the table never archived', { timeout: 300_000 }, async (t) => {
  const pipeline = await setupPipeline(t, 'verify');
  const producer = await createTransactionsProducer(config, { topic: pipeline.names.topic.transactions });
  onCleanup(t, () => producer.close());
  const next = createTransactionGenerator({ users: 50, seed: 3, spreadDays: 1 });
  await producer.send(Array.from({ length: 1_200 }, next));
  const sink = pipeline.job('transactions-job-backup', { flushIntervalMs: 300 });
  await sink.start();
  await pipeline.waitForCount('transactions', 1_200);
  await sink.stop();
  const verify = () => spawnSync('pnpm', ['--silent', 'run', 'lake', '--', 'verify', '--namespace', pipeline.namespace, '--table', 'transactions', '--json'], { cwd: repoRoot, encoding: 'utf8' });
  const clean = verify();
  assert.equal(clean.status, 0, clean.stdout + clean.stderr);
  assert.equal(JSON.parse(clean.stdout).errors, 0);

  // more records, then "retention" deletes them before the sink ran again
  await producer.send(Array.from({ length: 600 }, next));
  const topic = pipeline.names.topic.transactions;
  const metadata = await pipeline.admin.metadata({ topics: [topic], forceUpdate: true });
  const partitions = Array.from({ length: metadata.topics.get(topic)!.partitionsCount }, (_, partition) => partition);
  const ends = await pipeline.admin.listOffsets({ topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp: -1n })) }] });
  await pipeline.admin.deleteRecords({ topics: [{ name: topic, partitions: ends[0]!.partitions.map((p) => ({ partition: p.partitionIndex, offset: p.offset })) }] });
  const outran = verify();
  assert.equal(outran.status, 1, outran.stdout + outran.stderr);
  const report = JSON.parse(outran.stdout) as { errors: number; findings: Array<{ level: string; message: string }> };
  const lost = report.findings.filter((f) => f.level === 'error' && /retention outran the sink/.test(f.message));
  assert.ok(lost.length > 0, JSON.stringify(report.findings));
  const missing = lost.reduce((sum, f) => sum + Number(/\((\d+) offset/.exec(f.message)![1]), 0);
  // the 600 records and the transaction markers among them: every offset past what the table archived
  const archived = (await loadTableState(pipeline.context.lakeTables(), pipeline.names.tables.transactions.iceberg))!.offsets!.next;
  const gap = ends[0]!.partitions.reduce((sum, p) => sum + Number(p.offset) - (archived[p.partitionIndex] ?? 0), 0);
  assert.ok(gap >= 600, `${gap} offsets deleted`);
  assert.equal(missing, gap, 'exactly the deleted, never archived offsets are reported');
});
