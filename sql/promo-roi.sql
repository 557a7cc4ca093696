-- Does the 10% promo pay off? Per day and in total, from the promo's actions (money in cents).
--   expected_without_promo: the purchases the offered sessions would have made anyway, as the
--     model predicted them at the offer (its calibration is checked by conversion-by-band.sql);
--   incremental_purchases: purchases with the promo beyond that;
--   margin_without_promo: those expected purchases at the promo buyers' average basket and full
--     margin; net_gain: the promo buyers' margin after discounts minus that; roi: net_gain per
--     cent of discount given.
WITH offers AS (
  SELECT user_session, dt, purchase_probability FROM promo_actions WHERE action = 'offer'
),
promo_purchases AS (
  SELECT user_session, cart_cents, margin_rate, revenue_cents, discount_cents, margin_cents, simulated
  FROM promo_actions
  WHERE action = 'purchase' AND promo
),
per_session AS (
  SELECT o.dt, o.purchase_probability, p.user_session IS NOT NULL AS purchased, p.simulated,
         p.cart_cents, p.margin_rate, p.revenue_cents, p.discount_cents, p.margin_cents
  FROM offers o LEFT JOIN promo_purchases p USING (user_session)
),
organic AS (
  SELECT dt, count(*) AS organic_purchases, sum(revenue_cents) AS organic_revenue_cents
  FROM promo_actions
  WHERE action = 'purchase' AND NOT promo
  GROUP BY GROUPING SETS ((dt), ())
),
promo AS (
  SELECT dt,
         count(*) AS offers,
         count(*) FILTER (WHERE purchased) AS promo_purchases,
         count(*) FILTER (WHERE simulated) AS simulated_purchases,
         round(sum(purchase_probability), 1) AS expected_without_promo,
         coalesce(sum(revenue_cents), 0) AS promo_revenue_cents,
         coalesce(sum(discount_cents), 0) AS discount_cents,
         coalesce(sum(margin_cents), 0) AS promo_margin_cents,
         coalesce(round(sum(purchase_probability) * avg(cart_cents * margin_rate)), 0) AS margin_without_promo_cents
  FROM per_session
  GROUP BY GROUPING SETS ((dt), ())
)
SELECT CASE WHEN promo.offers IS NULL OR organic.organic_purchases IS NULL THEN CAST(coalesce(promo.dt, organic.dt) AS VARCHAR)
            ELSE coalesce(CAST(promo.dt AS VARCHAR), 'total') END AS dt,
       coalesce(offers, 0) AS offers,
       coalesce(promo_purchases, 0) AS promo_purchases,
       coalesce(simulated_purchases, 0) AS simulated_purchases,
       coalesce(expected_without_promo, 0) AS expected_without_promo,
       round(coalesce(promo_purchases - expected_without_promo, 0), 1) AS incremental_purchases,
       coalesce(promo_revenue_cents, 0) AS promo_revenue_cents,
       coalesce(discount_cents, 0) AS discount_cents,
       coalesce(promo_margin_cents, 0) AS promo_margin_cents,
       coalesce(margin_without_promo_cents, 0) AS margin_without_promo_cents,
       coalesce(promo_margin_cents - margin_without_promo_cents, 0) AS net_gain_cents,
       round((promo_margin_cents - margin_without_promo_cents) / nullif(discount_cents, 0), 2) AS roi,
       coalesce(organic_purchases, 0) AS organic_purchases,
       coalesce(organic_revenue_cents, 0) AS organic_revenue_cents
FROM promo FULL JOIN organic ON promo.dt IS NOT DISTINCT FROM organic.dt
ORDER BY coalesce(promo.dt, organic.dt) NULLS LAST;
