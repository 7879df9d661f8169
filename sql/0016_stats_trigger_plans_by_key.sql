-- The stats trigger on transactions, with plans that go by key whatever a session's first
-- statement held.
--
-- PL/pgSQL plans each static statement once per session and keeps the plan. 0010's
-- statements joined the transition table to agent_stats, users and transactions, so their
-- plans were made for the transition table of the session's first call: after a first
-- finality pass of 5,000 rows, the agent_stats update hash-joined the whole table on every
-- later pass (a 3-row pass read all 10,000 rows and took 2.1-2.8 ms, against 1.1 ms when
-- the session's first pass was small). Now the transition tables are read alone (plans of
-- those tables only) into arrays: per row that moves a total, its agent, its user and the
-- earning it adds; per agent and per user, the sum; the refunds and confirmed payments the
-- marking needs. The statements that touch another table take the arrays as parameters,
-- with a generic plan (plan_cache_mode below): made for a few elements, it goes by key, at
-- any size. A statement of pending rows (a live write, a backfill batch) reads only itself.
-- Measured against 0010 (its plans made for small statements), alternating statement by
-- statement on one server: a one-row insert the same (confirmed 1.02 / 0.95 ms against
-- 1.01 / 0.95; pending 0.53 against 0.54 / 0.56); finality passes of 2,000 rows 4-7%
-- slower (259 / 274 ms against 248 / 257), of 200 rows 2-13% (nested loops of index scans
-- where 0010 hash-joined). Planning the statements anew for every call (EXECUTE) cost
-- 0.5-0.9 ms more per small write. Same deltas, same rules as 0010.

CREATE OR REPLACE FUNCTION update_stats_on_transaction_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    row_agents uuid[];   -- per row that moves a total: its agent, its user, and what it
    row_users uuid[];    -- adds (the earning of a new row, minus that of an old one)
    row_earnings numeric[];
    agent_ids uuid[];
    agent_deltas numeric[];
    user_ids uuid[];
    user_deltas numeric[];
    ids uuid[];
    signatures text[];
    agents uuid[];
BEGIN
    -- One branch per operation: a transition table exists only for its own operation.
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(agent_id), array_agg(user_id), array_agg(e) INTO row_agents, row_users, row_earnings
        FROM (SELECT agent_id, user_id, transaction_earning(transaction_type, status, mint, amount) AS e
              FROM new_rows) x
        WHERE e <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(agent_id), array_agg(user_id), array_agg(e) INTO row_agents, row_users, row_earnings
        FROM (SELECT agent_id, user_id, transaction_earning(transaction_type, status, mint, amount) AS e
              FROM new_rows
              UNION ALL
              SELECT agent_id, user_id, -transaction_earning(transaction_type, status, mint, amount)
              FROM old_rows) x
        WHERE e <> 0;
    ELSE
        SELECT array_agg(agent_id), array_agg(user_id), array_agg(e) INTO row_agents, row_users, row_earnings
        FROM (SELECT agent_id, user_id, -transaction_earning(transaction_type, status, mint, amount) AS e
              FROM old_rows) x
        WHERE e <> 0;
    END IF;
    IF row_earnings IS NOT NULL THEN  -- a statement of pending rows moves nothing
        SELECT array_agg(agent_id), array_agg(delta) INTO agent_ids, agent_deltas
        FROM (SELECT agent_id, sum(e) AS delta FROM unnest(row_agents, row_earnings) AS x(agent_id, e)
              GROUP BY agent_id) d
        WHERE delta <> 0;
        SELECT array_agg(user_id), array_agg(delta) INTO user_ids, user_deltas
        FROM (SELECT user_id, sum(e) AS delta FROM unnest(row_users, row_earnings) AS x(user_id, e)
              WHERE user_id IS NOT NULL GROUP BY user_id) d
        WHERE delta <> 0;
    END IF;
    IF agent_ids IS NOT NULL THEN
        UPDATE agent_stats s SET total_earnings = s.total_earnings + d.delta
        FROM unnest(agent_ids, agent_deltas) AS d(agent_id, delta)
        WHERE s.agent_id = d.agent_id;
    END IF;
    IF user_ids IS NOT NULL THEN
        UPDATE users u SET total_spent = u.total_spent + d.delta
        FROM unnest(user_ids, user_deltas) AS d(user_id, delta)
        WHERE u.id = d.user_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND pg_trigger_depth() = 1 THEN
        -- A confirmed refund marks the payment it names (same agent) refunded, whichever
        -- of the two was confirmed first. (Depth 1 only: the marking UPDATE fires this
        -- trigger again, which applies its delta but must not recurse.) Each UPDATE runs
        -- only when the statement holds a row it can act on, and goes from those rows into
        -- the unique (signature, agent) key, the refunds' index and the primary key: a
        -- live insert of pending rows reads no other row of the table.
        SELECT array_agg(refund_of), array_agg(agent_id) INTO signatures, agents
        FROM (SELECT DISTINCT refund_of, agent_id FROM new_rows
              WHERE transaction_type = 'refund' AND status = 'confirmed' AND refund_of IS NOT NULL) r;
        IF signatures IS NOT NULL THEN
            UPDATE transactions p SET status = 'refunded'
            FROM unnest(signatures, agents) AS r(refund_of, agent_id)
            WHERE p.transaction_signature = r.refund_of AND p.agent_id = r.agent_id
              AND p.status = 'confirmed' AND p.transaction_type <> 'refund';
        END IF;
        -- A payment confirmed after its refund.
        SELECT array_agg(id), array_agg(transaction_signature), array_agg(agent_id)
        INTO ids, signatures, agents
        FROM new_rows WHERE status = 'confirmed' AND transaction_type <> 'refund';
        IF ids IS NOT NULL THEN
            UPDATE transactions p SET status = 'refunded'
            FROM unnest(ids, signatures, agents) AS n(id, transaction_signature, agent_id)
            WHERE p.id = n.id AND p.status = 'confirmed'
              AND EXISTS (SELECT 1 FROM transactions r
                          WHERE r.refund_of = n.transaction_signature AND r.agent_id = n.agent_id
                            AND r.transaction_type = 'refund' AND r.status = 'confirmed');
        END IF;
    END IF;
    RETURN NULL;
END $$;
