-- Scored shop sessions by the band of their last predicted purchase probability: how many
-- bought, how that compares with what the model said (a calibration check), and what the promo
-- did in each band. A session bought if the shop saw its purchase (session_predictions) or the
-- promo's simulated customer took the offer (promo_actions).
WITH sessions AS (
  SELECT user_session,
         arg_max(purchase_probability, events) FILTER (WHERE kind = 'score') AS probability,
         bool_or(kind = 'purchase') AS bought_in_shop
  FROM session_predictions
  GROUP BY user_session
),
promo AS (
  SELECT user_session,
         bool_or(action = 'offer') AS offered,
         bool_or(action = 'purchase' AND promo) AS bought_with_promo,
         bool_or(action = 'purchase' AND simulated) AS bought_simulated
  FROM promo_actions
  GROUP BY user_session
)
SELECT format('{:.1f}-{:.1f}', floor(least(probability, 0.999) * 10) / 10, floor(least(probability, 0.999) * 10) / 10 + 0.1) AS band,
       count(*) AS sessions,
       round(avg(probability), 3) AS mean_probability,
       count(*) FILTER (WHERE bought_in_shop OR coalesce(bought_simulated, false)) AS purchased,
       round(count(*) FILTER (WHERE bought_in_shop OR coalesce(bought_simulated, false)) / count(*), 3) AS conversion_rate,
       count(*) FILTER (WHERE offered) AS offered,
       count(*) FILTER (WHERE bought_with_promo) AS purchased_with_promo
FROM sessions LEFT JOIN promo USING (user_session)
WHERE probability IS NOT NULL
GROUP BY band
ORDER BY band;
