-- The stats trigger on transactions, with its refund marking driven by index.
--
-- sql/0002's second marking UPDATE ("a payment confirmed after its refund") joined the
-- statement's rows to transactions with the table on the outside: the planner chose a
-- sequential scan of every confirmed row, on every insert. A live write of one row
-- spent 3.9 ms there on a 100,000-row table (pg_stat_statements, tests/bench/
-- bench_daemon.py), growing with the table -- most of the daemon's write latency.
-- Now both marking UPDATEs run only when the statement holds a row they can act on,
-- and start from those rows. Nothing else changes: same deltas, same rules.

CREATE OR REPLACE FUNCTION update_stats_on_transaction_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- One branch per operation: a transition table exists only for its own operation.
    IF TG_OP = 'INSERT' THEN
        UPDATE agent_stats s SET total_earnings = s.total_earnings + d.delta
        FROM (SELECT agent_id, sum(transaction_earning(transaction_type, status, mint, amount)) AS delta
              FROM new_rows GROUP BY agent_id) d
        WHERE s.agent_id = d.agent_id AND d.delta <> 0;
        UPDATE users u SET total_spent = u.total_spent + d.delta
        FROM (SELECT user_id, sum(transaction_earning(transaction_type, status, mint, amount)) AS delta
              FROM new_rows WHERE user_id IS NOT NULL GROUP BY user_id) d
        WHERE u.id = d.user_id AND d.delta <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE agent_stats s SET total_earnings = s.total_earnings + d.delta
        FROM (SELECT agent_id, sum(e) AS delta FROM (
                  SELECT agent_id, transaction_earning(transaction_type, status, mint, amount) AS e
                  FROM new_rows
                  UNION ALL
                  SELECT agent_id, -transaction_earning(transaction_type, status, mint, amount)
                  FROM old_rows) x
              GROUP BY agent_id) d
        WHERE s.agent_id = d.agent_id AND d.delta <> 0;
        UPDATE users u SET total_spent = u.total_spent + d.delta
        FROM (SELECT user_id, sum(e) AS delta FROM (
                  SELECT user_id, transaction_earning(transaction_type, status, mint, amount) AS e
                  FROM new_rows
                  UNION ALL
                  SELECT user_id, -transaction_earning(transaction_type, status, mint, amount)
                  FROM old_rows) x
              WHERE user_id IS NOT NULL GROUP BY user_id) d
        WHERE u.id = d.user_id AND d.delta <> 0;
    ELSE
        UPDATE agent_stats s SET total_earnings = s.total_earnings - d.delta
        FROM (SELECT agent_id, sum(transaction_earning(transaction_type, status, mint, amount)) AS delta
              FROM old_rows GROUP BY agent_id) d
        WHERE s.agent_id = d.agent_id AND d.delta <> 0;
        UPDATE users u SET total_spent = u.total_spent - d.delta
        FROM (SELECT user_id, sum(transaction_earning(transaction_type, status, mint, amount)) AS delta
              FROM old_rows WHERE user_id IS NOT NULL GROUP BY user_id) d
        WHERE u.id = d.user_id AND d.delta <> 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND pg_trigger_depth() = 1 THEN
        -- A confirmed refund marks the payment it names (same agent) refunded, whichever
        -- of the two was confirmed first. (Depth 1 only: the marking UPDATE fires this
        -- trigger again, which applies its delta but must not recurse.) Each UPDATE runs
        -- only when the statement holds such a row, and is driven from those rows into
        -- the unique (signature, agent) key and the primary key: a live insert of pending
        -- rows reads no other row of the table.
        IF EXISTS (SELECT 1 FROM new_rows WHERE transaction_type = 'refund' AND status = 'confirmed'
                                              AND refund_of IS NOT NULL) THEN
            UPDATE transactions p SET status = 'refunded'
            FROM (SELECT DISTINCT refund_of, agent_id FROM new_rows
                  WHERE transaction_type = 'refund' AND status = 'confirmed' AND refund_of IS NOT NULL) r
            WHERE p.transaction_signature = r.refund_of AND p.agent_id = r.agent_id
              AND p.status = 'confirmed' AND p.transaction_type <> 'refund';
        END IF;
        IF EXISTS (SELECT 1 FROM new_rows WHERE status = 'confirmed' AND transaction_type <> 'refund') THEN
            UPDATE transactions p SET status = 'refunded'
            WHERE p.id IN (
                    SELECT n.id FROM new_rows n
                    WHERE n.status = 'confirmed' AND n.transaction_type <> 'refund'
                      AND EXISTS (SELECT 1 FROM transactions r
                                  WHERE r.refund_of = n.transaction_signature AND r.agent_id = n.agent_id
                                    AND r.transaction_type = 'refund' AND r.status = 'confirmed'))
              AND p.status = 'confirmed';
        END IF;
    END IF;
    RETURN NULL;
END $$;
