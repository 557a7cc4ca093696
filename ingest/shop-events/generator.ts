import type { ShopEvent } from '../../schemas/shop-events.ts';
import { seededRandom } from '../transactions/generator.ts';

export interface ShopOptions {
  /** Same seed, same catalogue and sessions. */
  seed: number;
  /** Distinct shoppers; sessions are spread over them. */
  users?: number;
  /** Session start times are spread uniformly over this many past days (0 = the last hour). */
  spreadDays?: number;
  /** "Now" for event times; fixed by tests to make output fully reproducible. */
  now?: number;
}

export interface Product {
  product_id: number;
  /** 19 digits, as in the public data set: beyond 2^53, so a bigint. */
  category_id: bigint;
  category_code: string | null;
  brand: string | null;
  price: number;
}

/** One shopping session: its hidden intent, its browse events, and its purchases (if any) after them. */
export interface Session {
  user_session: string;
  /** The hidden propensity (0-1) that drove this session: the truth a model tries to recover. */
  intent: number;
  /** view, cart and remove_from_cart events, in time order. */
  browse: ShopEvent[];
  /** One purchase event per product still in the cart at checkout; empty when the session did not buy. */
  purchases: ShopEvent[];
}

const BRANDS = ['runail', 'irisk', 'masura', 'grattol', 'bpw.style', 'estel', 'ingarden', 'kapous', 'uno', 'jessnail', 'lianail', 'haruyama', 'smart', 'concept', 'freedecor'];
const CATEGORY_CODES = ['appliances.environment.vacuum', 'furniture.bathroom.bath', 'apparel.glove', 'stationery.cartrige', 'accessories.bag', 'sport.diving', 'furniture.living_room.cabinet', 'appliances.personal.hair_cutter'];

/**
 * A synthetic cosmetics shop in the format of the public data set. A catalogue of products
 * (brands, 19-digit category ids, log-normal prices; category_code and brand often absent, as
 * there), and sessions whose hidden purchase intent shapes a realistic funnel: many views, fewer
 * carts, some removals, few purchases. Higher intent means more views, more carts, fewer
 * removals and a likelier purchase, so a model has something to learn and the truth is known.
 */
export function createShop(options: ShopOptions): { catalogue: Product[]; nextSession(): Session } {
  const random = seededRandom(options.seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const users = options.users ?? 5_000;
  const now = options.now ?? Date.now();
  const spreadMs = (options.spreadDays ?? 0) * 86_400_000 || 3_600_000;

  const categories = Array.from({ length: 40 }, (_, i) => ({
    category_id: 1_487_580_004_000_000_000n + BigInt(Math.floor(random() * 1e12)) * 1_000n + BigInt(i),
    category_code: random() < 0.25 ? pick(CATEGORY_CODES) : null,
  }));
  const catalogue: Product[] = Array.from({ length: 600 }, (_, i) => {
    const category = pick(categories);
    return {
      product_id: 5_700_000 + i * 37,
      category_id: category.category_id,
      category_code: category.category_code,
      brand: random() < 0.6 ? pick(BRANDS) : null,
      price: Math.round(Math.exp(1.6 + 0.9 * gaussian()) * 100) / 100,
    };
  });
  const byCategory = new Map<bigint, Product[]>();
  for (const product of catalogue) byCategory.set(product.category_id, [...(byCategory.get(product.category_id) ?? []), product]);

  const sessionId = () =>
    Array.from({ length: 4 }, () => Math.floor(random() * 2 ** 32).toString(16).padStart(8, '0'))
      .join('')
      .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');

  return {
    catalogue,
    nextSession() {
      // Most visitors browse; a few came to buy (a skewed Beta-like draw).
      const intent = random() ** 2.2;
      const user_id = 400_000_000 + Math.floor(random() * users) * 13;
      const user_session = sessionId();
      let time = Math.floor(now - random() * spreadMs);
      // a shopper who means to buy reads product pages longer and stays within a category
      const step = () => (time += 5_000 + Math.floor(-Math.log(1 - random()) * 40_000 * (0.3 + 1.4 * intent)));
      const favourite = byCategory.get(pick(categories).category_id) ?? catalogue;
      const loyalty = 0.2 + 0.75 * intent;
      const event = (event_type: ShopEvent['event_type'], product: Product): ShopEvent => ({ event_time: step(), event_type, ...product, user_id, user_session });

      const browse: ShopEvent[] = [];
      const cart: Product[] = [];
      const views = 1 + Math.floor(-Math.log(1 - random()) * (1.5 + 10 * intent));
      for (let v = 0; v < views; v++) {
        const product = random() < loyalty ? pick(favourite) : pick(catalogue);
        browse.push(event('view', product));
        if (random() < 0.01 + 0.7 * intent) {
          browse.push(event('cart', product));
          cart.push(product);
        }
        if (cart.length && random() < 0.4 * (1 - intent)) browse.push(event('remove_from_cart', cart.splice(Math.floor(random() * cart.length), 1)[0]!));
      }
      // decided shoppers almost always check out, browsers almost never
      const buys = cart.length > 0 && random() < 1 / (1 + Math.exp(-12 * (intent - 0.5)));
      return { user_session, intent, browse, purchases: buys ? cart.map((product) => event('purchase', product)) : [] };
    },
  };
}
