-- The shop's funnel per day: sessions that viewed, carted and purchased, with step conversions,
-- from the archived click events.
WITH sessions AS (
  SELECT dt, user_session,
         bool_or(event_type = 'view') AS viewed,
         bool_or(event_type = 'cart') AS carted,
         bool_or(event_type = 'purchase') AS purchased
  FROM shop_events
  GROUP BY ALL
)
SELECT dt,
       count(*) FILTER (WHERE viewed) AS viewed,
       count(*) FILTER (WHERE carted) AS carted,
       count(*) FILTER (WHERE purchased) AS purchased,
       round(count(*) FILTER (WHERE carted) / nullif(count(*) FILTER (WHERE viewed), 0), 3) AS cart_rate,
       round(count(*) FILTER (WHERE purchased) / nullif(count(*) FILTER (WHERE carted), 0), 3) AS purchase_rate
FROM sessions
GROUP BY dt
ORDER BY dt;
