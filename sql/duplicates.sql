-- Rows that share every field of a transaction. An exactly-once archive returns nothing.
SELECT user_id, transaction_timestamp_millis, amount, currency, counterpart_id, count(*) AS copies
FROM transactions
GROUP BY ALL
HAVING count(*) > 1
ORDER BY copies DESC, user_id
LIMIT 100;
