-- Per event day and currency: transactions, debits, credits and amounts.
SELECT dt,
       currency,
       count(*) AS transactions,
       count(*) FILTER (WHERE amount < 0) AS debits,
       count(*) FILTER (WHERE amount > 0) AS credits,
       round(sum(amount) FILTER (WHERE amount < 0), 2) AS debit_amount,
       round(sum(amount) FILTER (WHERE amount > 0), 2) AS credit_amount
FROM transactions
GROUP BY dt, currency
ORDER BY dt, transactions DESC;
