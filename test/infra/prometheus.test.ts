import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { repoRoot } from '../../core/config.ts';
import { createProducer } from '../../core/kafka-producer.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { config, onCleanup, spawnJobs, unusedPort, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

interface ScrapeConfig {
  job_name: string;
  honor_labels?: boolean;
  scrape_interval?: string;
  static_configs: Array<{ targets: string[] }>;
}

interface Panel {
  title: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

const monitoring = join(repoRoot, 'infra', 'monitoring');

/** Grafana's own variables, as Grafana would fill them in for a short range. */
function asPrometheusQuery(expr: string): string {
  return expr.replaceAll('$__rate_interval', '30s').replaceAll('$__interval', '5s').replaceAll('$__range', '5m').replace(/\$\{?\w+\}?/g, '.*');
}

test("Debian's Prometheus scrapes a running job with the shipped config, and every query of the Grafana dashboard answers", { timeout: 240_000 }, async (t) => {
  const { namespace, names } = await setupPipeline(t, 'prometheus');
  const jobs = spawnJobs(t, ['transactions-job-backup', 'transactions-ml-features-job', 'user-transaction-counts-redis-sink'], [
    '--namespace', namespace, '--flush-interval-ms', '1000', '--metrics-port', '0',
  ]);
  const url = await waitFor('the metrics endpoint', async () => /"msg":"metrics listening".*?"url":"([^"]+)"/.exec(jobs.output())?.[1], 60_000, 200);

  // the shipped local config, pointed at this job's port and scraping faster
  const shipped = parse(readFileSync(join(monitoring, 'prometheus.local.yml'), 'utf8')) as { scrape_configs: ScrapeConfig[] };
  const scrape = shipped.scrape_configs.find((c) => c.static_configs.some((s) => s.targets.includes('127.0.0.1:9464')));
  assert.ok(scrape, 'the local config scrapes 127.0.0.1:9464, where `--metrics-port 9464` serves');
  assert.equal(scrape.honor_labels, true, "the jobs' own job label must win over the scrape job's");
  const dir = mkdtempSync(join(tmpdir(), 'lakestream-prometheus-'));
  onCleanup(t, () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'prometheus.yml');
  writeFileSync(file, stringify({ ...shipped, global: { scrape_interval: '1s' }, scrape_configs: [{ ...scrape, scrape_interval: '1s', static_configs: [{ targets: [new URL(url).host] }] }] }));
  const port = await unusedPort();
  const prometheus = spawn('prometheus', [`--config.file=${file}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let prometheusLog = '';
  prometheus.stderr.on('data', (chunk: Buffer) => (prometheusLog = (prometheusLog + chunk.toString()).slice(-20_000)));
  onCleanup(t, () => prometheus.kill('SIGKILL'));
  const api = `http://127.0.0.1:${port}/api/v1`;
  await waitFor('Prometheus to be ready', async () => ((await fetch(`http://127.0.0.1:${port}/-/ready`).catch(() => undefined))?.ok ? true : undefined), 60_000, 500).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${prometheusLog.slice(-3_000)}`);
  });
  const query = async (expr: string) => {
    const body = (await (await fetch(`${api}/query?query=${encodeURIComponent(expr)}`)).json()) as { status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    assert.equal(body.status, 'success', `${expr}: ${body.error}`);
    return body.data!.result;
  };

  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  const raw = createProducer(config, 'lakestream-test-raw');
  await raw.connect();
  onCleanup(t, () => raw.disconnect());
  const generate = createTransactionGenerator({ users: 25, seed: 4, spreadDays: 0 });
  for (let i = 0; i < 5; i++) {
    await producer.send(Array.from({ length: 200 }, generate));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  await raw.send({ topic: names.topic.transactions, messages: [{ key: '1', value: Buffer.from('not avro') }] });

  const backup = `${namespace}.transactions-job-backup`;
  // under the job label the sink gave them: every record read, every row flushed to the lake
  await waitFor('Prometheus to hold every record the sink read and wrote', async () => {
    const read = await query(`lakestream_records_in_total{job="${backup}"}`);
    const written = await query(`lakestream_records_out_total{job="${backup}",output="lake:transactions"}`);
    return read.length === 1 && read[0]!.value[1] === '1001' && written[0]?.value[1] === '1000' ? true : undefined;
  }, 90_000, 1_000);
  await new Promise((resolve) => setTimeout(resolve, 3_000));

  const dashboard = JSON.parse(readFileSync(join(monitoring, 'grafana', 'dashboards', 'lakestream.json'), 'utf8')) as { panels: Panel[] };
  const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]).filter((panel) => panel.targets?.some((target) => target.expr));
  assert.ok(panels.length >= 8, `${panels.length} panels with queries`);
  const answered: string[] = [];
  const empty: string[] = [];
  for (const panel of panels) {
    let rows = 0;
    for (const target of panel.targets!.filter((target) => target.expr)) rows += (await query(asPrometheusQuery(target.expr!))).length;
    (rows ? answered : empty).push(panel.title);
  }
  // with three jobs running and data through them, only failure panels may stay empty
  const mayBeEmpty = /error|fail/i;
  assert.deepEqual(empty.filter((title) => !mayBeEmpty.test(title)), [], `answered: ${answered.join(', ')}`);
  assert.ok(answered.length >= panels.length - 2);
});
