import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { topicDeclarations } from '../../platform/catalog.ts';
import { repoRoot } from '../../core/config.ts';
import { uniformDraw } from '../../core/hash.ts';
import { withTimeout } from '../../core/async.ts';
import { createLogger } from '../../core/log.ts';
import { createCollector } from '../../dashboard/collect.ts';
import { startDashboard } from '../../dashboard/server.ts';
import { createTransactionGenerator } from '../../ingest/transactions/generator.ts';
import { createTopicProducer } from '../../ingest/topic-producer.ts';
import { createTransactionsProducer } from '../../ingest/transactions/producer.ts';
import { readPromoSummary } from '../../features/promo-summary.ts';
import { config, onCleanup, runCliFile, unusedPort, waitFor } from '../helpers.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

const artifacts = join(repoRoot, 'test-artifacts');

/** Debian's Chromium, as the machine runs it: no sandbox as root, and no calls home. */
async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** What a chart on the page holds, read from Chart.js itself. */
function chartData(page: Page, id: string) {
  return page.evaluate((canvasId) => {
    const chart = (globalThis as unknown as { Chart: { getChart(id: string): { data: { labels: unknown[]; datasets: Array<{ label: string; data: Array<number | null> }> } } | undefined } }).Chart.getChart(canvasId);
    return chart ? { labels: chart.data.labels.map(String), datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })) } : undefined;
  }, id);
}

const isEmpty = (page: Page, card: string) => page.locator(`[data-source="${card}"]`).evaluate((element) => element.classList.contains('is-empty'));

test('the dashboard shows a live pipeline in a real browser: empty states first, then charts that move with the data', { timeout: 300_000 }, async (t) => {
  const { namespace, names, job } = await setupPipeline(t, 'dashboard');
  const log = createLogger('dashboard-test');
  const dashboard = await startDashboard(createCollector(config, { namespace, lakeIntervalMs: 2_000 }), { port: 0, host: '127.0.0.1', intervalMs: 1_000, log });
  onCleanup(t, () => dashboard.close());
  const browser = await launchChromium();
  onCleanup(t, () => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(dashboard.url);

  // a new namespace: topics exist but hold nothing, the lake is empty; nothing is an error
  await page.waitForFunction('Number(document.body.dataset.snapshots ?? 0) >= 2');
  // the lake's cards say they are loading until the first read of the lake is in
  await page.waitForFunction("document.querySelectorAll('.card.is-loading').length === 0", undefined, { timeout: 60_000 });
  assert.equal(await page.locator('#banners .banner').count(), 0, await page.locator('#banners').innerText());
  assert.equal(await isEmpty(page, 'tables'), true);
  assert.equal(await isEmpty(page, 'topUsers'), true);
  assert.equal(await isEmpty(page, 'probabilities'), true);
  assert.equal(await isEmpty(page, 'promo'), true);
  assert.match(await page.locator('[data-source="tables"] .empty').innerText(), /no tables yet/);
  assert.equal(await isEmpty(page, 'topics'), false, 'the namespace\'s topics are listed, at 0 records/s');
  assert.match(await page.locator('[data-source="topUsers"] details.source pre').textContent() ?? '', /DuckDB: SELECT user_id, count\(\*\)/, 'each card names its query');

  // data flows: a producer at a steady rate and the transactions jobs
  const producer = await createTransactionsProducer(config, { topic: names.topic.transactions });
  onCleanup(t, () => producer.close());
  for (const name of ['transactions-job-backup', 'transactions-ml-features-job']) await job(name, { flushIntervalMs: 1_000 }).start();
  const generate = createTransactionGenerator({ users: 30, seed: 21, spreadDays: 0 });
  let sent = 0;
  const producing = (async () => {
    for (let second = 0; second < 8; second++) {
      await producer.send(Array.from({ length: 250 }, generate));
      sent += 250;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  })();
  onCleanup(t, () => producing);

  const rate = await waitFor('the transactions/s chart to show the flow', async () => {
    const data = await chartData(page, 'chart-transactions');
    const peak = Math.max(0, ...(data?.datasets[0]?.data ?? []).map((v) => v ?? 0));
    return peak > 50 ? peak : undefined;
  }, 60_000, 500).catch(async (error: unknown) => {
    const snapshot = (await (await fetch(new URL('/api/snapshot', dashboard.url))).json()) as Record<string, unknown>;
    throw new Error(`${String(error)}; the chart: ${JSON.stringify(await chartData(page, "chart-transactions"))}; the server's snapshot: ${JSON.stringify({ services: snapshot.services, topics: snapshot.topics, transactions: snapshot.transactions }).slice(0, 2_000)}`);
  });
  assert.ok(rate < 2_000, `a plausible rate (${rate}/s for 250 every second)`);
  const topics = await chartData(page, 'chart-topics');
  assert.ok(topics!.datasets.some((d) => d.label === 'transactions' && d.data.some((v) => (v ?? 0) > 0)), 'events/s per topic includes transactions (named without the namespace)');
  await producing;

  // the lake and its queries catch up: rows, files, the top users and the amounts
  await waitFor('the lake table to show every row', async () => {
    const row = await page.locator('#table-lake tbody tr', { hasText: /^transactions/ }).first().innerText().catch(() => '');
    return row.includes(sent.toLocaleString('en-US')) ? row : undefined;
  }, 90_000, 1_000);
  assert.equal(await isEmpty(page, 'tables'), false);
  const top = await waitFor('the top users chart', async () => ((await chartData(page, 'chart-top-users'))?.labels.length === 10 ? chartData(page, 'chart-top-users') : undefined), 30_000, 500);
  const topCounts = top!.datasets[0]!.data as number[];
  assert.deepEqual([...topCounts].sort((a, b) => b - a), topCounts, 'largest first');
  const amounts = await chartData(page, 'chart-amounts');
  const perCurrency = amounts!.datasets.map((d) => d.data.reduce<number>((sum, v) => sum + (v ?? 0), 0));
  assert.equal(perCurrency.reduce((a, b) => a + b, 0), sent, 'every transaction in the amount distribution, once');
  assert.ok(amounts!.datasets.length >= 2, 'one series per currency');
  await waitFor('the consumer lag of the sink to be listed', async () => ((await page.locator("#table-lag").innerText()).includes("transactions-job-backup") ? true : undefined), 30_000, 500);
  assert.equal(await isEmpty(page, 'deadLetters'), false);

  // a backfill over the archived day shows up among the runs
  const backfill = await runCliFile('backfill/cli.ts', ['--namespace', namespace], {}, 120_000);
  assert.equal(backfill.status, 0, backfill.stderr.slice(-2_000));
  const run = await waitFor('the backfill run to be listed', async () => {
    const text = await page.locator('#table-runs tbody').innerText().catch(() => '');
    return /backfill\s+\S+\s+done/.test(text) ? text : undefined;
  }, 30_000, 500);
  assert.equal(await isEmpty(page, 'runs'), false, run);

  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
  assert.deepEqual(pageErrors, []);
});

test('the first snapshot does not wait for the lake: with a catalog that never answers, the live figures come at once and the lake cards say they are loading', { timeout: 120_000 }, async (t) => {
  // a server that takes the connection and never answers, as a catalog stuck on a large lake
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  onCleanup(t, () => {
    silent.closeAllConnections();
    return new Promise((resolve) => silent.close(resolve));
  });
  const catalogUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const dashboard = await startDashboard(createCollector({ ...config, ICEBERG_CATALOG_URL: catalogUrl }, { namespace: 'dashboard-slow-lake' }), { port: 0, host: '127.0.0.1', intervalMs: 1_000, log: createLogger('dashboard-test') });
  onCleanup(t, () => dashboard.close());
  const snapshot = (await withTimeout(fetch(new URL('/api/snapshot', dashboard.url)).then((response) => response.json()), 20_000, 'the first snapshot')) as {
    lake: { refreshedAt: number | null; tables: unknown[] };
    services: Array<{ name: string; ok: boolean }>;
  };
  assert.equal(snapshot.lake.refreshedAt, null, 'the lake is still being read');
  assert.deepEqual(snapshot.lake.tables, []);
  assert.ok(snapshot.services.some((service) => service.name === 'Kafka' && service.ok), 'the live figures are in');

  const browser = await launchChromium();
  onCleanup(t, () => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(dashboard.url);
  await page.waitForFunction('Number(document.body.dataset.snapshots ?? 0) >= 1');
  for (const card of ['tables', 'topUsers', 'probabilities']) {
    assert.equal(await page.locator(`[data-source="${card}"]`).evaluate((element) => element.classList.contains('is-loading')), true, `${card} shows it is loading`);
  }
  assert.equal(await page.locator('[data-source="topics"]').evaluate((element) => element.classList.contains('is-loading')), false, 'the Kafka cards do not wait');
});

test('a backing service that does not answer shows a banner naming it and its setting, and the rest still renders', { timeout: 120_000 }, async (t) => {
  const deadRedis = `redis://127.0.0.1:${await unusedPort()}`;
  const dashboard = await startDashboard(createCollector({ ...config, REDIS_URL: deadRedis }, { namespace: 'dashboard-no-redis' }), { port: 0, host: '127.0.0.1', intervalMs: 1_000, log: createLogger('dashboard-test') });
  onCleanup(t, () => dashboard.close());
  const browser = await launchChromium();
  onCleanup(t, () => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(dashboard.url);
  const banner = page.locator('#banners .banner[data-service="Redis"]');
  await banner.waitFor({ timeout: 30_000 });
  assert.match(await banner.innerText(), /Redis is not answering \(REDIS_URL\)/);
  assert.equal(await page.locator('#banners .banner[data-service="Kafka"]').count(), 0, 'Kafka answers');
  assert.equal(await isEmpty(page, 'promo'), true);
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'dashboard-redis-down.png') });
});

test('the business view: probabilities, offers, conversion and money per hour match the promo job\'s own figures', { timeout: 300_000 }, async (t) => {
  const { names, job, redis, query } = await setupPipeline(t, 'dashboard-shop');
  const dashboard = await startDashboard(createCollector(config, { namespace: names.namespace, lakeIntervalMs: 2_000 }), { port: 0, host: '127.0.0.1', intervalMs: 1_000, log: createLogger('dashboard-test') });
  onCleanup(t, () => dashboard.close());
  for (const name of ['promo', 'promo-actions-lake-sink', 'session-predictions-lake-sink', 'promo-economics-redis-sink']) await job(name, { flushIntervalMs: 500 }).start();

  // scored sessions as the session scorer writes them, a third of them ending in a purchase
  const producer = await createTopicProducer(config, { ...topicDeclarations.sessionPredictions, name: names.topic.sessionPredictions });
  onCleanup(t, () => producer.close());
  const records = [];
  for (let i = 0; i < 400; i++) {
    const session = `dashboard-session-${i}`;
    const base = { user_session: session, user_id: i, model_version: 1, events: 1, views: 1, carts: 1, removes: 0, duration_s: 5 };
    const scores = 1 + Math.floor(uniformDraw(`${session}:n`) * 3);
    for (let k = 0; k < scores; k++) {
      records.push({ ...base, kind: 'score', purchase_probability: uniformDraw(`${session}:${k}`), cart_value: 20 + k * 15, event_time: Date.UTC(2026, 10, 23, i % 3) + k * 60_000 });
    }
    if (uniformDraw(`${session}:buys`) < 0.33) records.push({ ...base, kind: 'purchase', purchase_probability: 1, cart_value: 50, event_time: Date.UTC(2026, 10, 23, i % 3) + 10 * 60_000 });
  }
  await producer.send(records);

  const summary = await waitFor('the promo economics of every session in Redis', async () => {
    const figures = await readPromoSummary(redis, names.features.promoEconomics);
    const inLake = Number((await query<{ n: string }>('SELECT count(*) AS n FROM session_predictions'))[0]!.n);
    return figures.offers > 0 && inLake === records.length ? figures : undefined;
  }, 120_000, 1_000);
  const browser = await launchChromium();
  onCleanup(t, () => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
  await page.goto(dashboard.url);

  await waitFor('the offers made to appear', async () => ((await page.locator('[data-figure="offers made"]').innerText().catch(() => '')) === summary.offers.toLocaleString('en-US') ? true : undefined), 60_000, 500);
  const probabilities = await waitFor('the probability histogram', async () => {
    const data = await chartData(page, 'chart-probabilities');
    const total = (data?.datasets[0]?.data ?? []).reduce<number>((sum, v) => sum + (v ?? 0), 0);
    return total === 400 ? data : undefined;
  }, 60_000, 500);
  assert.equal(probabilities!.labels.length, 10, 'ten bands of 0.1; each session counted once, at its latest score');
  const conversion = (await chartData(page, 'chart-conversion'))!;
  assert.deepEqual(conversion.labels.map((label) => label.replace(/ \(.*/, '')), ['without promo', 'with promo']);
  const offeredSessions = Number(/\((\d+) sessions\)/.exec(conversion.labels[1]!)![1]);
  assert.equal(offeredSessions, summary.offers, 'one offer per offered session');
  assert.ok(conversion.datasets[0]!.data.every((rate) => rate !== null && rate >= 0 && rate <= 1));
  const hourly = (await chartData(page, 'chart-hourly'))!;
  assert.deepEqual(hourly.datasets.map((d) => d.label), ['revenue', 'discount cost', 'margin']);
  const sum = (label: string) => hourly.datasets.find((d) => d.label === label)!.data.reduce<number>((total, v) => total + (v ?? 0), 0);
  assert.equal(Math.round(sum('revenue') * 100), summary.revenue_cents, 'revenue over the hours = the promo\'s running total in Redis');
  assert.equal(Math.round(sum('discount cost') * 100), summary.discount_cents);
  assert.equal(Math.round(sum('margin') * 100), summary.margin_cents);
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'dashboard-business.png'), fullPage: true });
});
