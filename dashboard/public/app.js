// The dashboard page: one server-sent event stream of snapshots (see dashboard/collect.ts for
// what a snapshot holds); each snapshot updates the charts in place, without a reload.
/* global Chart */
'use strict';

const HISTORY = 90;
const palette = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d'];
const charts = {};
const history = { labels: [], topics: new Map(), transactions: [] };
let snapshots = 0;

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
Chart.defaults.font.size = 11;

function chart(id, type, options = {}) {
  charts[id] ??= new Chart(document.getElementById(id), { type, data: { labels: [], datasets: [] }, options: { responsive: true, ...options } });
  return charts[id];
}

function show(card, hasData) {
  document.querySelector(`[data-source="${card}"]`).classList.toggle('is-empty', !hasData);
}

const number = (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));
const money = (cents) => (cents / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);
const ago = (ms) => (ms === null ? '–' : `${Math.max(0, Math.round((Date.now() - ms) / 1000))} s ago`);
/** Names without the namespace, which the header shows once. */
const local = (snapshot, name) => (snapshot.namespace && name.startsWith(`${snapshot.namespace}.`) ? name.slice(snapshot.namespace.length + 1) : name);
const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

function table(id, head, rows) {
  document.getElementById(id).innerHTML =
    `<thead><tr>${head.map(([label, numeric]) => `<th${numeric ? ' class="n"' : ''}>${label}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.map((row) => `<tr>${row.map((cell, i) => `<td${head[i][1] ? ' class="n"' : ''}>${escape(cell)}</td>`).join('')}</tr>`).join('')}</tbody>`;
}

function sources(snapshot) {
  for (const card of document.querySelectorAll('[data-source]')) {
    let details = card.querySelector('details.source');
    if (!details) {
      details = document.createElement('details');
      details.className = 'source';
      details.innerHTML = '<summary>source</summary><pre></pre>';
      card.append(details);
    }
    details.querySelector('pre').textContent = snapshot.sources[card.dataset.source] ?? '';
  }
}

function banners(snapshot) {
  const down = snapshot.services.filter((service) => !service.ok);
  document.getElementById('banners').innerHTML = down
    .map((service) => `<div class="banner" data-service="${escape(service.name)}"><strong>${escape(service.name)} is not answering</strong> (${escape(service.setting)}): ${escape(service.error ?? '')}. Its figures are missing or stale.</div>`)
    .join('');
}

function pipeline(snapshot) {
  // rates need two snapshots; until then the series start empty
  history.labels.push(new Date(snapshot.at).toLocaleTimeString());
  for (const topic of snapshot.topics) {
    if (!history.topics.has(topic.topic)) history.topics.set(topic.topic, Array(history.labels.length - 1).fill(null));
  }
  for (const [topic, series] of history.topics) series.push(snapshot.topics.find((t) => t.topic === topic)?.perSecond ?? null);
  history.transactions.push(snapshot.transactions.perSecond);
  if (history.labels.length > HISTORY) {
    history.labels.shift();
    history.transactions.shift();
    for (const series of history.topics.values()) series.shift();
  }
  const topics = chart('chart-topics', 'line', { scales: { y: { beginAtZero: true, title: { display: true, text: 'records/s' } } }, plugins: { legend: { position: 'right' } } });
  topics.data.labels = [...history.labels];
  topics.data.datasets = [...history.topics].map(([topic, series], i) => ({ label: local(snapshot, topic), data: [...series], borderColor: palette[i % palette.length], pointRadius: 0, borderWidth: 2, spanGaps: true }));
  topics.update('none');
  show('topics', snapshot.topics.length > 0);

  const lag = chart('chart-lag', 'bar', { indexAxis: 'y', plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, title: { display: true, text: 'records not committed' } } } });
  lag.data.labels = snapshot.lag.map((g) => local(snapshot, g.group));
  lag.data.datasets = [{ label: 'lag', data: snapshot.lag.map((g) => g.total), backgroundColor: palette[0] }];
  lag.update('none');
  table('table-lag', [['group'], ['partitions: lag', false]], snapshot.lag.map((g) => [local(snapshot, g.group), [...g.partitions].sort((a, b) => a.partition - b.partition).map((p) => `${p.partition}: ${p.lag}`).join('  ')]));
  show('lag', snapshot.lag.length > 0);

  table('table-dlq', [['dead-letter topic'], ['records', true]], snapshot.deadLetters.map((d) => [d.topic.replace(`dlq.${snapshot.namespace}.`, 'dlq.'), number(d.records)]));
  show('deadLetters', snapshot.deadLetters.length > 0);

  table('table-lake', [['table'], ['rows', true], ['files', true], ['bytes', true], ['last flush', true], ['sink']], snapshot.lake.tables.map((t) => [t.table, number(t.rows), number(t.files), bytes(t.bytes), ago(t.lastFlush), local(snapshot, t.sink)]));
  show('tables', snapshot.lake.tables.some((t) => t.files > 0));

  table('table-runs', [['kind'], ['run'], ['status'], ['at', true]], snapshot.lake.runs.map((r) => [r.kind, r.name, r.status, new Date(r.at).toLocaleString()]));
  show('runs', snapshot.lake.runs.length > 0);
}

function business(snapshot) {
  const { promo, probabilities, conversion, hourly } = snapshot.business;
  const probability = chart('chart-probabilities', 'bar', { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, title: { display: true, text: 'sessions' } } } });
  probability.data.labels = probabilities.map((b) => b.band);
  probability.data.datasets = [{ label: 'sessions', data: probabilities.map((b) => b.sessions), backgroundColor: probabilities.map((b) => (parseFloat(b.band) >= 0.4 && parseFloat(b.band) < 0.7 ? palette[4] : palette[0])) }];
  probability.update('none');
  show('probabilities', probabilities.some((b) => b.sessions > 0));

  const figures = promo
    ? [['offers made', number(promo.offers)], ['purchases with promo', number(promo.promo_conversions)], ['organic purchases', number(promo.organic_conversions)], ['revenue', money(promo.revenue_cents)], ['discount cost', money(promo.discount_cents)], ['margin', money(promo.margin_cents)]]
    : [];
  document.getElementById('promo-figures').innerHTML = figures.map(([k, v]) => `<dt>${k}</dt><dd data-figure="${k}">${v}</dd>`).join('');
  show('promo', Boolean(promo));

  const rates = chart('chart-conversion', 'bar', { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, max: 1, title: { display: true, text: 'share of sessions that bought' } } } });
  rates.data.labels = conversion.map((c) => `${c.group} (${number(c.sessions)} sessions)`);
  rates.data.datasets = [{ label: 'conversion', data: conversion.map((c) => c.rate), backgroundColor: [palette[1], palette[8]] }];
  rates.update('none');
  show('conversion', conversion.length > 0);

  const money$ = chart('chart-hourly', 'line', { scales: { y: { title: { display: true, text: 'currency units' } } } });
  money$.data.labels = hourly.map((h) => h.hour);
  money$.data.datasets = [
    { label: 'revenue', data: hourly.map((h) => h.revenue_cents / 100), borderColor: palette[0] },
    { label: 'discount cost', data: hourly.map((h) => h.discount_cents / 100), borderColor: palette[2] },
    { label: 'margin', data: hourly.map((h) => h.margin_cents / 100), borderColor: palette[1] },
  ];
  money$.update('none');
  show('hourly', hourly.length > 0);
}

function transactions(snapshot) {
  const rate = chart('chart-transactions', 'line', { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, title: { display: true, text: 'transactions/s' } } } });
  rate.data.labels = [...history.labels];
  rate.data.datasets = [{ label: 'transactions/s', data: [...history.transactions], borderColor: palette[0], pointRadius: 0, borderWidth: 2, spanGaps: true }];
  rate.update('none');
  show('transactionsPerSecond', snapshot.topics.length > 0);

  const { topUsers, amounts } = snapshot.transactions;
  const top = chart('chart-top-users', 'bar', { indexAxis: 'y', plugins: { legend: { display: false } } });
  top.data.labels = topUsers.map((u) => `user ${u.user_id}`);
  top.data.datasets = [{ label: 'transactions', data: topUsers.map((u) => u.transactions), backgroundColor: palette[3] }];
  top.update('none');
  show('topUsers', topUsers.length > 0);

  // signed orders of magnitude: -2 is a debit between 10 and 100
  const buckets = [...new Set(amounts.map((a) => a.bucket))].sort((a, b) => a - b);
  const label = (b) => (b === 0 ? '0' : b < 0 ? `−${10 ** -b}…−${10 ** (-b - 1)}` : `+${10 ** (b - 1)}…${10 ** b}`);
  const currencies = [...new Set(amounts.map((a) => a.currency))].sort();
  const distribution = chart('chart-amounts', 'bar', { scales: { y: { beginAtZero: true, title: { display: true, text: 'transactions' } }, x: { title: { display: true, text: 'amount (debits negative)' } } } });
  distribution.data.labels = buckets.map(label);
  distribution.data.datasets = currencies.map((currency, i) => ({ label: currency, data: buckets.map((b) => amounts.find((a) => a.currency === currency && a.bucket === b)?.transactions ?? 0), backgroundColor: palette[i % palette.length] }));
  distribution.update('none');
  show('amounts', amounts.length > 0);
}

// the cards filled from the lake, which the server reads in the background after the live figures
const LAKE_CARDS = ['tables', 'runs', 'probabilities', 'conversion', 'hourly', 'topUsers', 'amounts'];

function loading(snapshot) {
  for (const card of LAKE_CARDS) document.querySelector(`[data-source="${card}"]`).classList.toggle('is-loading', snapshot.lake.refreshedAt === null);
}

function render(snapshot) {
  snapshots++;
  document.getElementById('namespace').textContent = snapshot.namespace ? `namespace ${snapshot.namespace}` : 'production';
  document.getElementById('updated').textContent = `updated ${new Date(snapshot.at).toLocaleTimeString()}`;
  banners(snapshot);
  pipeline(snapshot);
  business(snapshot);
  transactions(snapshot);
  loading(snapshot);
  sources(snapshot);
  document.body.dataset.snapshots = String(snapshots);
}

const events = new EventSource('/events');
events.addEventListener('snapshot', (event) => render(JSON.parse(event.data)));
events.addEventListener('error', () => {
  document.getElementById('banners').innerHTML = '<div class="banner" data-service="dashboard"><strong>The dashboard server is not answering</strong>: reconnecting…</div>';
});
window.dashboard = { charts, snapshotCount: () => snapshots };
