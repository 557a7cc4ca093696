import { recordValidator, rule } from './rules.ts';

/** A product as `input-products-value.avsc` and `products-value.avsc` describe it. */
export interface Product {
  product_id: number | bigint;
  name: string;
  category_code: string | null;
  brand: string | null;
  price: number;
  shop_id: string;
  updated_at: number;
}

/** A product the filter held back (`blocked-products-value.avsc`). */
export interface BlockedProduct extends Product {
  reason: string;
  blocked_at: number;
  source_partition: number;
  source_offset: number;
}

export const validateProduct = recordValidator<Product>('product', {
  product_id: rule.id(),
  name: rule.text(),
  category_code: rule.optionalText(),
  brand: rule.optionalText(),
  price: rule.nonNegative(),
  shop_id: rule.text(),
  updated_at: rule.epochMillis(),
});
