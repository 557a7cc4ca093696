// The order page: one order per submit, POSTed as JSON to the gateway; the answer shows where
// Kafka stored it, or which field the gateway refused.
'use strict';

const form = document.getElementById('order');
const result = document.getElementById('result');
const button = document.getElementById('submit');

function show(kind, text) {
  result.className = kind;
  result.textContent = text;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const field = (name) => form.elements.namedItem(name).value.trim();
  const order = {
    order_id: crypto.randomUUID(),
    customer_name: field('customer_name'),
    user_id: Number(field('user_id')),
    product: field('product'),
    quantity: Number(field('quantity')),
    unit_price: Number(field('unit_price')),
    order_time: Date.now(),
  };
  const headers = { 'content-type': 'application/json' };
  if (field('api_key')) headers.authorization = `Bearer ${field('api_key')}`;
  button.disabled = true;
  show('ok', 'Sending…');
  try {
    const response = await fetch('/v1/topics/orders/records', { method: 'POST', headers, body: JSON.stringify(order) });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.ok) {
      const [at] = body.records;
      show('ok', `Order ${order.order_id} accepted: partition ${at.partition}, offset ${at.offset}.`);
      result.dataset.orderId = order.order_id;
      result.dataset.partition = String(at.partition);
      result.dataset.offset = String(at.offset);
    } else {
      const fields = (body.records ?? []).flatMap((record) => record.errors ?? []).map((error) => `${error.field} ${error.message}`);
      const retry = response.headers.get('retry-after');
      show('error', `Not accepted (${response.status}): ${fields.length ? fields.join('; ') : body.error}${retry ? ` Try again in ${retry} s.` : ''}`);
    }
  } catch (error) {
    show('error', `The gateway did not answer: ${error.message}`);
  } finally {
    button.disabled = false;
  }
});
