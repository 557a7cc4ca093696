-- Each user's number of transactions and net amount, from the archive.
SELECT user_id, count(*) AS total_transactions, round(sum(amount), 2) AS net_amount
FROM transactions
GROUP BY user_id
ORDER BY total_transactions DESC, user_id;
