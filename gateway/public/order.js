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

// an order whose outcome is unknown (503, no answer) is sent again under the same id, which is
// also its Idempotency-Key: pressing the button again can never order twice
let unsettled;

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const field = (name) => form.elements.namedItem(name).value.trim();
  const entered = {
    customer_name: field('customer_name'),
    user_id: Number(field('user_id')),
    product: field('product'),
    quantity: Number(field('quantity')),
    unit_price: Number(field('unit_price')),
  };
  const sameAsUnsettled = unsettled && Object.keys(entered).every((name) => unsettled[name] === entered[name]);
  const order = sameAsUnsettled ? unsettled : { order_id: crypto.randomUUID(), ...entered, order_time: Date.now() };
  unsettled = order;
  const headers = { 'content-type': 'application/json', 'idempotency-key': order.order_id };
  if (field('api_key')) headers.authorization = `Bearer ${field('api_key')}`;
  button.disabled = true;
  show('ok', 'Sending…');
  try {
    const response = await fetch('/v1/topics/orders/records', { method: 'POST', headers, body: JSON.stringify(order) });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.ok) {
      unsettled = undefined;
      const [at] = body.records;
      show('ok', `Order ${order.order_id} accepted: partition ${at.partition}, offset ${at.offset}.`);
      result.dataset.orderId = order.order_id;
      result.dataset.partition = String(at.partition);
      result.dataset.offset = String(at.offset);
    } else {
      // refused outright: nothing of it was published, so the next submit is a new order
      if (response.status < 500 && response.status !== 409) unsettled = undefined;
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
