import { recordValidator, rule, type FieldRule } from './rules.ts';

/** An order as `orders-value.avsc` describes it. */
export interface Order {
  order_id: string;
  customer_name: string;
  user_id: number;
  product: string;
  quantity: number;
  unit_price: number;
  order_time: number;
}

const positiveQuantity: FieldRule = { check: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 10_000, message: 'must be a whole number from 1 to 10000' };

export const validateOrder = recordValidator<Order>('order', {
  order_id: rule.matches(/^[\w-]{8,64}$/, 'must be 8 to 64 letters, digits, _ or - (a UUID, say)'),
  customer_name: rule.text(),
  user_id: rule.int32(0),
  product: rule.text(),
  quantity: positiveQuantity,
  unit_price: rule.nonNegative(),
  order_time: rule.epochMillis(),
});
