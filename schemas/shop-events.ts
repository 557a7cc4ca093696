import { recordValidator, rule } from './rules.ts';

export const SHOP_EVENT_TYPES = ['view', 'cart', 'remove_from_cart', 'purchase'] as const;
export type ShopEventType = (typeof SHOP_EVENT_TYPES)[number];

/** A click event of the shop, as `shop-events-value.avsc` describes it. */
export interface ShopEvent {
  event_time: number;
  event_type: ShopEventType;
  product_id: number | bigint;
  /** 19 digits in the public data set: a bigint there. */
  category_id: number | bigint;
  category_code: string | null;
  brand: string | null;
  price: number;
  user_id: number | bigint;
  user_session: string;
}

/** The business rules of a shop event: returns the record, or throws RECORD_INVALID naming the field and the record. */
export const validateShopEvent = recordValidator<ShopEvent>('shop event', {
  event_time: rule.epochMillis(),
  event_type: rule.oneOf(SHOP_EVENT_TYPES),
  product_id: rule.id(),
  category_id: rule.id(),
  category_code: rule.optionalText(),
  brand: rule.optionalText(),
  price: rule.nonNegative(),
  user_id: rule.id(),
  user_session: rule.text(),
});
