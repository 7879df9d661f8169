-- Stats: one written definition per value, used both by the statement-level triggers
-- that keep agent_stats / users.total_spent current and by recompute_agent_stats(),
-- the reference that recomputes everything from the base tables.

CREATE FUNCTION update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := timezone('utc', now());
    RETURN NEW;
END $$;

CREATE TRIGGER users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER agents_updated_at BEFORE UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER agent_pricing_updated_at BEFORE UPDATE ON agent_pricing
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER tasks_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER agent_stats_updated_at BEFORE UPDATE ON agent_stats
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

-- success_rate: completed / (completed + failed) as a percentage, 2 decimals; 0 with no outcome.
CREATE FUNCTION calculate_agent_success_rate(completed integer, failed integer)
RETURNS numeric(5, 2) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN coalesce(completed, 0) + coalesce(failed, 0) = 0 THEN 0::numeric(5, 2)
                ELSE round(100.0 * coalesce(completed, 0) / (coalesce(completed, 0) + coalesce(failed, 0)), 2)
           END
$$;

-- What one transactions row adds to its agent's total_earnings and its user's total_spent:
-- SOL only (mint IS NULL); funding/payment/subscription count once confirmed (and stay
-- counted when later refunded); a confirmed refund counts negatively.
CREATE FUNCTION transaction_earning(transaction_type text, status text, mint text, amount numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN mint IS NOT NULL THEN 0
        WHEN transaction_type IN ('funding', 'payment', 'subscription')
             AND status IN ('confirmed', 'refunded') THEN amount
        WHEN transaction_type = 'refund' AND status = 'confirmed' THEN -amount
        ELSE 0
    END
$$;

-- The smoothed rating shown as agent_stats.rating: a Bayesian average with a fixed prior
-- (mean 3.0, worth 5 reviews), so one 5-star review does not top the board; fixed so it
-- stays incremental (no global mean to re-read). NULL without reviews.
CREATE FUNCTION smoothed_rating(rating_sum bigint, rating_count bigint)
RETURNS numeric(3, 2) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN coalesce(rating_count, 0) = 0 THEN NULL
                ELSE round((rating_sum + 3.0 * 5) / (rating_count + 5), 2) END
$$;

COMMENT ON COLUMN agent_stats.tasks_completed IS 'count of tasks with status completed';
COMMENT ON COLUMN agent_stats.tasks_failed IS 'count of tasks with status failed';
COMMENT ON COLUMN agent_stats.success_rate IS 'calculate_agent_success_rate(tasks_completed, tasks_failed)';
COMMENT ON COLUMN agent_stats.avg_response_time_minutes IS
    'round(avg(completed_at - started_at) in minutes) over completed tasks having both; NULL when none';
COMMENT ON COLUMN agent_stats.total_earnings IS
    'sum of transaction_earning() over the agent''s transactions (SOL only)';
COMMENT ON COLUMN agent_stats.rating IS 'smoothed_rating(sum, count) of reviews.rating (prior 3.0 x 5)';
COMMENT ON COLUMN agent_stats.review_count IS 'count of reviews';
COMMENT ON COLUMN agent_stats.avg_rating IS 'round(avg(reviews.rating), 2); NULL when none';
COMMENT ON COLUMN agent_stats.hire_count IS 'count of tasks whose status is not cancelled';
COMMENT ON COLUMN users.total_spent IS 'sum of transaction_earning() over the user''s transactions (SOL only)';

-- Task-derived stats of the given agents (all agents when NULL), from the base table.
CREATE FUNCTION task_stats_of(agent_ids uuid[])
RETURNS TABLE (agent_id uuid, tasks_completed integer, tasks_failed integer,
               success_rate numeric(5, 2), avg_response_time_minutes integer, hire_count integer)
LANGUAGE sql STABLE AS $$
    SELECT a.id,
           coalesce(t.completed, 0)::integer,
           coalesce(t.failed, 0)::integer,
           calculate_agent_success_rate(coalesce(t.completed, 0)::integer, coalesce(t.failed, 0)::integer),
           t.avg_minutes,
           coalesce(t.hires, 0)::integer
    FROM agents a
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status <> 'cancelled') AS hires,
               round(avg(extract(epoch FROM completed_at - started_at) / 60)
                     FILTER (WHERE status = 'completed' AND started_at IS NOT NULL
                             AND completed_at IS NOT NULL))::integer AS avg_minutes
        FROM tasks WHERE tasks.agent_id = a.id
    ) t ON true
    WHERE agent_ids IS NULL OR a.id = ANY (agent_ids)
$$;

CREATE FUNCTION review_stats_of(agent_ids uuid[])
RETURNS TABLE (agent_id uuid, rating numeric(3, 2), review_count integer, avg_rating numeric(3, 2))
LANGUAGE sql STABLE AS $$
    SELECT a.id, smoothed_rating(r.total, r.n), coalesce(r.n, 0)::integer, round(r.mean, 2)
    FROM agents a
    LEFT JOIN LATERAL (
        SELECT sum(rating)::bigint AS total, count(*) AS n, avg(rating) AS mean
        FROM reviews WHERE reviews.agent_id = a.id
    ) r ON true
    WHERE agent_ids IS NULL OR a.id = ANY (agent_ids)
$$;

-- The reference: every agent's stats recomputed from tasks, reviews and transactions.
CREATE FUNCTION expected_agent_stats()
RETURNS TABLE (agent_id uuid, tasks_completed integer, tasks_failed integer,
               success_rate numeric(5, 2), avg_response_time_minutes integer,
               total_earnings numeric(18, 9), rating numeric(3, 2), review_count integer,
               avg_rating numeric(3, 2), hire_count integer)
LANGUAGE sql STABLE AS $$
    SELECT t.agent_id, t.tasks_completed, t.tasks_failed, t.success_rate,
           t.avg_response_time_minutes,
           coalesce((SELECT sum(transaction_earning(x.transaction_type, x.status, x.mint, x.amount))
                     FROM transactions x WHERE x.agent_id = t.agent_id), 0)::numeric(18, 9),
           r.rating, r.review_count, r.avg_rating, t.hire_count
    FROM task_stats_of(NULL) t JOIN review_stats_of(NULL) r USING (agent_id)
$$;

CREATE FUNCTION expected_user_totals()
RETURNS TABLE (user_id uuid, total_spent numeric(18, 9))
LANGUAGE sql STABLE AS $$
    SELECT u.id,
           coalesce((SELECT sum(transaction_earning(x.transaction_type, x.status, x.mint, x.amount))
                     FROM transactions x WHERE x.user_id = u.id), 0)::numeric(18, 9)
    FROM users u
$$;

-- Overwrite every stored stat with the reference values; returns rows changed.
CREATE FUNCTION recompute_agent_stats() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    changed integer;
    changed_users integer;
BEGIN
    INSERT INTO agent_stats (agent_id) SELECT id FROM agents ON CONFLICT (agent_id) DO NOTHING;
    UPDATE agent_stats s
    SET tasks_completed = e.tasks_completed, tasks_failed = e.tasks_failed,
        success_rate = e.success_rate, avg_response_time_minutes = e.avg_response_time_minutes,
        total_earnings = e.total_earnings, rating = e.rating, review_count = e.review_count,
        avg_rating = e.avg_rating, hire_count = e.hire_count
    FROM expected_agent_stats() e
    WHERE s.agent_id = e.agent_id
      AND (s.tasks_completed, s.tasks_failed, s.success_rate, s.avg_response_time_minutes,
           s.total_earnings, s.rating, s.review_count, s.avg_rating, s.hire_count)
          IS DISTINCT FROM
          (e.tasks_completed, e.tasks_failed, e.success_rate, e.avg_response_time_minutes,
           e.total_earnings, e.rating, e.review_count, e.avg_rating, e.hire_count);
    GET DIAGNOSTICS changed = ROW_COUNT;
    UPDATE users u SET total_spent = e.total_spent
    FROM expected_user_totals() e
    WHERE u.id = e.user_id AND u.total_spent IS DISTINCT FROM e.total_spent;
    GET DIAGNOSTICS changed_users = ROW_COUNT;
    RETURN changed + changed_users;
END $$;

-- Every agent has exactly one agent_stats row from the moment it exists.
CREATE FUNCTION create_agent_stats_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO agent_stats (agent_id) SELECT id FROM new_rows ON CONFLICT (agent_id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER agents_create_stats AFTER INSERT ON agents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION create_agent_stats_rows();

-- The daemon's wallet registry LISTENs on this channel (DESIGN section 7).
CREATE FUNCTION notify_agents_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('amoca_agents_changed', json_build_object(
        'op', lower(TG_OP),
        'agent_id', CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
        'wallet_address', CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.wallet_address END,
        'old_wallet_address', CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.wallet_address END
    )::text);
    RETURN NULL;
END $$;
CREATE TRIGGER agents_notify_insert_delete AFTER INSERT OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION notify_agents_changed();
CREATE TRIGGER agents_notify_wallet_change AFTER UPDATE OF wallet_address ON agents
    FOR EACH ROW WHEN (OLD.wallet_address IS DISTINCT FROM NEW.wallet_address)
    EXECUTE FUNCTION notify_agents_changed();

-- Tasks: recompute the task-derived stats of every agent the statement touched.
CREATE FUNCTION update_agent_stats_on_task_completion() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    affected uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT agent_id) INTO affected FROM new_rows WHERE agent_id IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT agent_id) INTO affected FROM old_rows WHERE agent_id IS NOT NULL;
    ELSE
        SELECT array_agg(DISTINCT agent_id) INTO affected FROM (
            SELECT agent_id FROM new_rows UNION SELECT agent_id FROM old_rows) x
        WHERE agent_id IS NOT NULL;
    END IF;
    IF affected IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE agent_stats s
    SET tasks_completed = e.tasks_completed, tasks_failed = e.tasks_failed,
        success_rate = e.success_rate, avg_response_time_minutes = e.avg_response_time_minutes,
        hire_count = e.hire_count
    FROM task_stats_of(affected) e
    WHERE s.agent_id = e.agent_id;
    RETURN NULL;
END $$;
CREATE TRIGGER tasks_stats_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_agent_stats_on_task_completion();
CREATE TRIGGER tasks_stats_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_agent_stats_on_task_completion();
CREATE TRIGGER tasks_stats_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_agent_stats_on_task_completion();

-- Reviews: recompute the review-derived stats of every agent the statement touched.
CREATE FUNCTION update_agent_rating_on_review() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    affected uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT agent_id) INTO affected FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT agent_id) INTO affected FROM old_rows;
    ELSE
        SELECT array_agg(DISTINCT agent_id) INTO affected FROM (
            SELECT agent_id FROM new_rows UNION SELECT agent_id FROM old_rows) x;
    END IF;
    IF affected IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE agent_stats s
    SET rating = e.rating, review_count = e.review_count, avg_rating = e.avg_rating
    FROM review_stats_of(affected) e
    WHERE s.agent_id = e.agent_id;
    RETURN NULL;
END $$;
CREATE TRIGGER reviews_stats_insert AFTER INSERT ON reviews REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_agent_rating_on_review();
CREATE TRIGGER reviews_stats_update AFTER UPDATE ON reviews
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_agent_rating_on_review();
CREATE TRIGGER reviews_stats_delete AFTER DELETE ON reviews REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_agent_rating_on_review();

-- Status only moves forward: pending -> confirmed | failed; confirmed -> refunded.
CREATE FUNCTION guard_transaction_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'pending' AND NEW.status IN ('confirmed', 'failed'))
        OR (OLD.status = 'confirmed' AND NEW.status = 'refunded')) THEN
        RAISE EXCEPTION 'transaction status cannot move from % to %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_status_forward_only',
                  TABLE = 'transactions';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transactions_status_forward_only BEFORE UPDATE OF status ON transactions
    FOR EACH ROW EXECUTE FUNCTION guard_transaction_status();

-- Transactions: apply the statement's delta of transaction_earning() to its agents and
-- users (one UPDATE each, however many rows), then mark refunded payments.
CREATE FUNCTION update_stats_on_transaction_change() RETURNS trigger
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
        -- trigger again, which applies its delta but must not recurse.)
        UPDATE transactions p SET status = 'refunded'
        FROM new_rows r
        WHERE r.transaction_type = 'refund' AND r.status = 'confirmed' AND r.refund_of IS NOT NULL
          AND p.transaction_signature = r.refund_of AND p.agent_id = r.agent_id
          AND p.status = 'confirmed' AND p.transaction_type <> 'refund';
        UPDATE transactions p SET status = 'refunded'
        FROM new_rows n
        WHERE n.id = p.id AND p.status = 'confirmed' AND p.transaction_type <> 'refund'
          AND EXISTS (SELECT 1 FROM transactions r
                      WHERE r.transaction_type = 'refund' AND r.status = 'confirmed'
                        AND r.refund_of = p.transaction_signature AND r.agent_id = p.agent_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER transactions_stats_insert AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_stats_on_transaction_change();
CREATE TRIGGER transactions_stats_update AFTER UPDATE ON transactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_stats_on_transaction_change();
CREATE TRIGGER transactions_stats_delete AFTER DELETE ON transactions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION update_stats_on_transaction_change();
