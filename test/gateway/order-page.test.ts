import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { repoRoot } from '../../core/config.ts';
import { onCleanup, waitFor } from '../helpers.ts';
import { setupGateway } from './fixture.ts';

test('the order page, in a real browser: fill, submit, see the acknowledgement, find the order in Kafka; a refused field is shown', { timeout: 120_000 }, async (t) => {
  const { gateway, read, published } = await setupGateway(t, 'order-page');
  await read('orders');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  onCleanup(t, () => browser.close());
  const page = await browser.newPage();
  await page.goto(gateway.url);
  await page.fill('#customer_name', 'Grace Hopper');
  await page.fill('#user_id', '1906');
  await page.fill('#product', 'mascara 12');
  await page.fill('#quantity', '3');
  await page.fill('#unit_price', '8.90');
  await page.click('#submit');
  const result = page.locator('#result.ok[data-order-id]');
  await result.waitFor({ timeout: 30_000 });
  const text = await result.innerText();
  assert.match(text, /^Order [\w-]+ accepted: partition \d, offset \d+\.$/);
  const orderId = await result.getAttribute('data-order-id');
  const partition = Number(await result.getAttribute('data-partition'));
  const offset = Number(await result.getAttribute('data-offset'));
  mkdirSync(join(repoRoot, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: join(repoRoot, 'test-artifacts', 'order-page.png'), fullPage: true });

  const stored = await waitFor('the order in Kafka', async () => published('orders').find((p) => p.value.order_id === orderId), 30_000, 200);
  assert.deepEqual([stored.partition, stored.offset], [partition, offset], 'where the page said');
  assert.deepEqual({ ...stored.value, order_time: 0 }, { order_id: orderId, customer_name: 'Grace Hopper', user_id: 1906, product: 'mascara 12', quantity: 3, unit_price: 8.9, order_time: 0 });

  // a name of only spaces passes the browser's check and is refused by the gateway's rules
  await page.fill('#customer_name', '   ');
  await page.click('#submit');
  await page.locator('#result.error').waitFor({ timeout: 30_000 });
  assert.match(await page.locator('#result').innerText(), /Not accepted \(400\): customer_name must be a non-empty string/);
});
