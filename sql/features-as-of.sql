-- Point in time: each user's transaction count as it was at `as_of` (epoch ms, UTC), the value a
-- model trained on that moment would have seen. Set it with `--set as_of=<ms>`; default: now.
SELECT user_id,
       max(total_transactions_count) AS total_transactions_count,
       max(event_timestamp_millis) AS as_of_event_millis
FROM user_transaction_counts
WHERE event_timestamp_millis <= coalesce(TRY_CAST(getvariable('as_of') AS BIGINT), epoch_ms(now()))
GROUP BY user_id
ORDER BY user_id;
