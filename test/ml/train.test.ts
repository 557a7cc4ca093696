import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { createObjectStore } from '../../core/object-store.ts';
import { config, testS3, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const run = (file: string, args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, file), ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 240_000 });

test('pnpm run train learns purchases from the archived synthetic shop and saves versioned artifacts', { timeout: 400_000 }, async (t) => {
  const { namespace, names, job, query } = await setupPipeline(t, 'train');
  const refused = run('ml/train-cli.ts', ['--namespace', namespace]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /train: the lake holds 0 shop sessions .* too few to train/);

  const produced = run('ingest/cli.ts', ['shop-events', '--sessions', '4000', '--seed', '5', '--days', '1', '--topic', names.topic.shopEvents]);
  assert.equal(produced.status, 0, produced.stderr);
  const events = Number(/sent ([\d,]+) events/.exec(produced.stdout)![1]!.replaceAll(',', ''));
  const sink = job('shop-events-lake-sink', { flushIntervalMs: 500 });
  await sink.start();
  await waitFor('the shop events in the lake', async () => {
    const [row] = await query<{ n: string }>('SELECT count(*) AS n FROM shop_events');
    return Number(row!.n) === events ? true : undefined;
  });
  await sink.stop();

  const first = run('ml/train-cli.ts', ['--namespace', namespace, '--trees', '60']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /\| logistic regression \(baseline\) \| 0\.\d{3} \|/);
  assert.match(first.stdout, /calibration on held-out sessions/);
  const store = createObjectStore(testS3(t), config.LAKE_BUCKET);
  const metrics = (await store.getJson<{ chosen: string; sessions: number; heldOut: Record<string, { auc: number }> }>(`${names.roots.models}/purchase/v1/metrics.json`))!.value;
  assert.equal(metrics.sessions, 4000);
  const chosen = metrics.heldOut[metrics.chosen]!.auc;
  assert.ok(chosen >= 0.8, `held-out AUC of the chosen model ${chosen}`);
  assert.ok(chosen >= metrics.heldOut.logistic!.auc, 'the chosen model is at least as good as the baseline');
  const model = (await store.getJson<{ version: number; kind: string; features: string[] }>(`${names.roots.models}/purchase/v1/model.json`))!.value;
  assert.equal(model.version, 1);
  assert.equal(model.kind, metrics.chosen);

  const second = run('ml/train-cli.ts', ['--namespace', namespace, '--trees', '20']);
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stdout, /saved s3:\/\/.*\/models\/purchase\/v2\//);
});
