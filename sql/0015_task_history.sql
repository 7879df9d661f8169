-- Lifetime task counts survive retention. The seed keeps tasks 2 years; before this
-- migration, pruning a finished task also lowered its agent's tasks_completed,
-- tasks_failed, success rate, response time, hire count and all-time board (the stats
-- count the tasks that exist). Now prune_expired_rows() first adds what the tasks it
-- deletes contributed to their agent's row in task_history, in the same transaction, and
-- the task-derived stats are the live tasks plus that history:
--   - task_stats_of() (the stats triggers and recompute_agent_stats() both use it) adds
--     the history to every count; the average response time is the sum of minutes over
--     the count, live and pruned together (the same division avg() does);
--   - update_leaderboard_rankings() adds it to the all_time window's completed and
--     failed counts. Daily, weekly and monthly cannot hold a task finished 2 years ago.
-- A task deleted by anyone else (the marketplace removing one) is gone from the stats as
-- before: only retention keeps a record. Only the SECURITY DEFINER prune writes the
-- history; the stats triggers recount an agent's tasks when its tasks change, so the
-- delete that follows the history's update finds the lifetime figures unchanged.
SET LOCAL lock_timeout = '5s';  -- the foreign key below takes a brief lock on agents

CREATE TABLE task_history (
    agent_id uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    tasks_completed integer NOT NULL DEFAULT 0 CHECK (tasks_completed >= 0),
    tasks_failed integer NOT NULL DEFAULT 0 CHECK (tasks_failed >= 0),
    hires integer NOT NULL DEFAULT 0 CHECK (hires >= 0),               -- not cancelled
    response_minutes numeric NOT NULL DEFAULT 0,  -- sum over completed tasks with both times
    responses integer NOT NULL DEFAULT 0 CHECK (responses >= 0),       -- how many such tasks
    tasks_pruned integer NOT NULL DEFAULT 0 CHECK (tasks_pruned >= 0), -- every status
    updated_at timestamp NOT NULL DEFAULT timezone('utc', now())
);
COMMENT ON TABLE task_history IS
    'per agent, what the tasks deleted by retention (prune_expired_rows) contributed to its stats';

GRANT SELECT ON task_history TO amoca_indexer, amoca_api, amoca_readonly;

COMMENT ON COLUMN agent_stats.tasks_completed IS
    'count of tasks with status completed, plus task_history.tasks_completed';
COMMENT ON COLUMN agent_stats.tasks_failed IS 'count of tasks with status failed, plus task_history.tasks_failed';
COMMENT ON COLUMN agent_stats.avg_response_time_minutes IS
    'round(minutes of completed_at - started_at over completed tasks having both, task_history.response_minutes'
    ' included, divided by their count, task_history.responses included); NULL when none';
COMMENT ON COLUMN agent_stats.hire_count IS 'count of tasks whose status is not cancelled, plus task_history.hires';

CREATE OR REPLACE FUNCTION task_stats_of(agent_ids uuid[])
RETURNS TABLE (agent_id uuid, tasks_completed integer, tasks_failed integer,
               success_rate numeric(5, 2), avg_response_time_minutes integer, hire_count integer)
LANGUAGE sql STABLE AS $$
    SELECT a.id,
           (coalesce(t.completed, 0) + coalesce(h.tasks_completed, 0))::integer,
           (coalesce(t.failed, 0) + coalesce(h.tasks_failed, 0))::integer,
           calculate_agent_success_rate((coalesce(t.completed, 0) + coalesce(h.tasks_completed, 0))::integer,
                                        (coalesce(t.failed, 0) + coalesce(h.tasks_failed, 0))::integer),
           round((coalesce(t.minutes, 0) + coalesce(h.response_minutes, 0))
                 / nullif(coalesce(t.responses, 0) + coalesce(h.responses, 0), 0))::integer,
           (coalesce(t.hires, 0) + coalesce(h.hires, 0))::integer
    FROM agents a
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status <> 'cancelled') AS hires,
               sum(extract(epoch FROM completed_at - started_at) / 60)
                   FILTER (WHERE status = 'completed' AND started_at IS NOT NULL
                           AND completed_at IS NOT NULL) AS minutes,
               count(*) FILTER (WHERE status = 'completed' AND started_at IS NOT NULL
                                AND completed_at IS NOT NULL) AS responses
        FROM tasks WHERE tasks.agent_id = a.id
    ) t ON true
    LEFT JOIN task_history h ON h.agent_id = a.id
    WHERE agent_ids IS NULL OR a.id = ANY (agent_ids)
$$;

-- As in 0006, but a batch of tasks is locked, added to task_history, then deleted.
CREATE OR REPLACE FUNCTION prune_expired_rows(p_table text, p_limit integer DEFAULT 5000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_cutoff timestamp;
    v_tasks uuid[];
    deleted integer;
BEGIN
    SELECT c.cutoff INTO v_cutoff FROM retention_cutoffs() c WHERE c.table_name = p_table;
    IF v_cutoff IS NULL THEN
        RAISE EXCEPTION 'no retention rule for table %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'batch size must be positive, got %', p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_table = 'messages' THEN
        DELETE FROM messages WHERE id IN (
            SELECT id FROM messages WHERE created_at < v_cutoff ORDER BY created_at LIMIT p_limit);
        GET DIAGNOSTICS deleted = ROW_COUNT;
        RETURN deleted;
    END IF;
    -- Locked: a task cannot change between what the history records and what is deleted.
    SELECT array_agg(x.id) INTO v_tasks FROM (
        SELECT id FROM tasks
        WHERE status IN ('completed', 'failed', 'cancelled')
          AND coalesce(completed_at, updated_at) < v_cutoff
        ORDER BY coalesce(completed_at, updated_at) LIMIT p_limit
        FOR UPDATE) x;
    IF v_tasks IS NULL THEN
        RETURN 0;
    END IF;
    INSERT INTO task_history AS h (agent_id, tasks_completed, tasks_failed, hires, response_minutes,
                                   responses, tasks_pruned)
    SELECT t.agent_id,
           count(*) FILTER (WHERE t.status = 'completed'),
           count(*) FILTER (WHERE t.status = 'failed'),
           count(*) FILTER (WHERE t.status <> 'cancelled'),
           coalesce(sum(extract(epoch FROM t.completed_at - t.started_at) / 60)
                        FILTER (WHERE t.status = 'completed' AND t.started_at IS NOT NULL
                                AND t.completed_at IS NOT NULL), 0),
           count(*) FILTER (WHERE t.status = 'completed' AND t.started_at IS NOT NULL
                            AND t.completed_at IS NOT NULL),
           count(*)
    FROM tasks t
    WHERE t.id = ANY (v_tasks) AND t.agent_id IS NOT NULL
    GROUP BY t.agent_id
    ON CONFLICT (agent_id) DO UPDATE SET
        tasks_completed = h.tasks_completed + excluded.tasks_completed,
        tasks_failed = h.tasks_failed + excluded.tasks_failed,
        hires = h.hires + excluded.hires,
        response_minutes = h.response_minutes + excluded.response_minutes,
        responses = h.responses + excluded.responses,
        tasks_pruned = h.tasks_pruned + excluded.tasks_pruned,
        updated_at = timezone('utc', now());
    DELETE FROM tasks WHERE id = ANY (v_tasks);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END $$;

-- As in 0008, with task_history in the all_time window (marked).
CREATE OR REPLACE FUNCTION update_leaderboard_rankings(p_period text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
SET plan_cache_mode = force_custom_plan  -- plan each refresh for its own window bounds
SET jit = off                            -- compiling costs more than it saves at this size
SET work_mem = '64MB'                    -- the board sorts (~120k rows, ~10 MB) stay in memory
AS $$
DECLARE
    v_now   timestamp := timezone('utc', now());
    v_day   timestamp := timezone('utc', now()) - interval '1 day';
    v_week  timestamp := timezone('utc', now()) - interval '7 days';
    v_month timestamp := timezone('utc', now()) - interval '30 days';
    v_scan  timestamp;  -- the base tables are read from here on
    v_horizons integer[];
    v_periods text[];
    written integer;
BEGIN
    IF p_period IS NOT NULL AND p_period NOT IN ('daily', 'weekly', 'monthly', 'all_time') THEN
        RAISE EXCEPTION 'unknown leaderboard period %', p_period USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Horizons: 1 daily, 2 weekly, 3 monthly, 4 all_time: the index of a period's column
    -- in the per-agent window arrays below.
    v_horizons := CASE p_period WHEN 'daily' THEN '{1}' WHEN 'weekly' THEN '{2}'
                                WHEN 'monthly' THEN '{3}' WHEN 'all_time' THEN '{4}'
                                ELSE '{1,2,3,4}' END::integer[];
    v_periods := CASE WHEN p_period IS NULL THEN '{daily,weekly,monthly,all_time}'::text[]
                      ELSE ARRAY[p_period] END;
    v_scan := CASE p_period WHEN 'daily' THEN v_day WHEN 'weekly' THEN v_week WHEN 'monthly' THEN v_month
                            ELSE '-infinity' END;
    -- One refresh at a time (the daemon's runner, `amoca-indexer rank`, anyone); a second
    -- caller waits and then recomputes from what the first committed.
    PERFORM pg_advisory_xact_lock(hashtext('amoca.update_leaderboard_rankings'));

    -- What the refresh does to each board row (period, board, agent): board 0 = overall.
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.leaderboard_diff (
        period text, board integer, agent_id uuid, rank integer, total integer, score numeric(10, 2),
        action "char",  -- 'i' insert, 'u' update, 'd' delete, '=' unchanged
        old_row tid     -- 'u', 'd': where the current row is
    ) ON COMMIT DROP;
    TRUNCATE pg_temp.leaderboard_diff;

    -- One pass over each base table from v_scan, grouped by agent: a column per window
    -- (cumulative; for a one-period refresh only its own column is complete).
    -- CREATE TABLE AS, unlike INSERT ... SELECT, may scan in parallel; being a utility
    -- statement it takes no parameters, so the window bounds are quoted literals.
    IF to_regclass('pg_temp.leaderboard_agents') IS NOT NULL THEN  -- called twice in one transaction
        DROP TABLE pg_temp.leaderboard_agents;
    END IF;
    EXECUTE format($sql$
    CREATE TEMP TABLE leaderboard_agents ON COMMIT DROP AS
    WITH task_windows AS (
        SELECT agent_id,
               count(*) FILTER (WHERE done AND outcome_at >= %1$L) AS c1,
               count(*) FILTER (WHERE done AND outcome_at >= %2$L) AS c2,
               count(*) FILTER (WHERE done AND outcome_at >= %3$L) AS c3,
               count(*) FILTER (WHERE done) AS c4,
               count(*) FILTER (WHERE NOT done AND outcome_at >= %1$L) AS f1,
               count(*) FILTER (WHERE NOT done AND outcome_at >= %2$L) AS f2,
               count(*) FILTER (WHERE NOT done AND outcome_at >= %3$L) AS f3,
               count(*) FILTER (WHERE NOT done) AS f4
        FROM (SELECT t.agent_id, t.status = 'completed' AS done,
                     coalesce(t.completed_at, t.started_at, t.created_at) AS outcome_at
              FROM tasks t
              WHERE t.status IN ('completed', 'failed') AND t.agent_id IS NOT NULL
                AND coalesce(t.completed_at, t.started_at, t.created_at) >= %4$L) s
        GROUP BY agent_id
    ),
    review_windows AS (
        SELECT r.agent_id,
               sum(r.rating) FILTER (WHERE r.created_at >= %1$L) AS s1,
               sum(r.rating) FILTER (WHERE r.created_at >= %2$L) AS s2,
               sum(r.rating) FILTER (WHERE r.created_at >= %3$L) AS s3,
               sum(r.rating) AS s4,
               count(*) FILTER (WHERE r.created_at >= %1$L) AS n1,
               count(*) FILTER (WHERE r.created_at >= %2$L) AS n2,
               count(*) FILTER (WHERE r.created_at >= %3$L) AS n3,
               count(*) AS n4
        FROM reviews r
        WHERE r.created_at >= %4$L
        GROUP BY r.agent_id
    ),
    earning_windows AS (
        SELECT agent_id,
               sum(lamports) FILTER (WHERE created_at >= %1$L) AS e1,
               sum(lamports) FILTER (WHERE created_at >= %2$L) AS e2,
               sum(lamports) FILTER (WHERE created_at >= %3$L) AS e3,
               sum(lamports) AS e4
        -- transaction_earning() without its zero cases: SOL rows, confirmed or refunded,
        -- refunds only when confirmed (they count negatively); the rest earn nothing.
        FROM (SELECT x.agent_id, x.created_at,
                     (CASE WHEN x.transaction_type = 'refund' THEN -x.amount ELSE x.amount END
                      * 1000000000)::bigint AS lamports
              FROM transactions x
              WHERE x.mint IS NULL AND x.status IN ('confirmed', 'refunded')
                AND (x.transaction_type <> 'refund' OR x.status = 'confirmed')
                AND x.created_at >= %4$L) s
        GROUP BY agent_id
    )
    SELECT a.id AS agent_id, row_number() OVER (ORDER BY a.agent_id)::integer AS slug_order,
           -- all_time adds the outcomes of the tasks retention deleted (task_history)
           ARRAY[t.c1, t.c2, t.c3, coalesce(t.c4, 0) + coalesce(th.tasks_completed, 0)]::integer[] AS completed,
           ARRAY[t.f1, t.f2, t.f3, coalesce(t.f4, 0) + coalesce(th.tasks_failed, 0)]::integer[] AS failed,
           ARRAY[smoothed_rating(r.s1, r.n1), smoothed_rating(r.s2, r.n2), smoothed_rating(r.s3, r.n3),
                 smoothed_rating(r.s4, r.n4)] AS rating,
           ARRAY[e.e1, e.e2, e.e3, e.e4] AS earned
    FROM agents a
    LEFT JOIN task_windows t ON t.agent_id = a.id
    LEFT JOIN task_history th ON th.agent_id = a.id
    LEFT JOIN review_windows r ON r.agent_id = a.id
    LEFT JOIN earning_windows e ON e.agent_id = a.id
    $sql$, v_day, v_week, v_month, v_scan);

    WITH agent_windows AS (  -- (horizon, agent) -> that window's figures
        SELECT h.horizon, a.agent_id, a.slug_order,
               coalesce(a.completed[h.horizon], 0) AS completed,
               coalesce(a.earned[h.horizon], 0) AS earned,
               -- 0.4 success + 0.2 rating, in thousandths: success and the smoothed rating
               -- have 2 decimals, rating = (smoothed - 1) x 25
               4 * (100 * calculate_agent_success_rate(coalesce(a.completed[h.horizon], 0),
                                                       coalesce(a.failed[h.horizon], 0)))::bigint
               + 50 * ((100 * coalesce(a.rating[h.horizon], 3.00))::bigint - 100) AS base
        FROM pg_temp.leaderboard_agents a CROSS JOIN unnest(v_horizons) h(horizon)
    ),
    boards AS (
        SELECT w.*, ad.domain_id AS board FROM agent_windows w JOIN agent_domains ad ON ad.agent_id = w.agent_id
        UNION ALL
        SELECT w.*, 0 FROM agent_windows w
    ),
    percentiles AS (  -- n1 = n - 1; fewer_* = rank - 1 (ties share the lowest rank)
        SELECT horizon, board, agent_id, slug_order, completed, earned, base,
               count(*) OVER w_board - 1 AS n1,
               rank() OVER (w_board ORDER BY completed) - 1 AS fewer_completed,
               rank() OVER (PARTITION BY horizon, board ORDER BY earned) - 1 AS fewer_earned
        FROM boards
        WINDOW w_board AS (PARTITION BY horizon, board)
    ),
    scored AS (  -- the score in hundredths, rounded half up (see the top of this file)
        SELECT horizon, board, agent_id, slug_order, completed, earned, n1,
               CASE WHEN n1 > 0
                    THEN (base * n1 + 30000 * fewer_completed + 10000 * fewer_earned + 5 * n1) / (10 * n1)
                    ELSE (base + 5) / 10 END AS hundredths
        FROM percentiles
    ),
    ranked AS (
        SELECT horizon, board, agent_id,
               row_number() OVER (PARTITION BY horizon, board
                                  ORDER BY hundredths DESC, completed DESC, earned DESC, slug_order)::integer AS rank,
               (n1 + 1)::integer AS total, (hundredths / 100.0)::numeric(10, 2) AS score
        FROM scored
    ),
    current_rows AS (  -- the rows of the periods being refreshed
        SELECT l.ctid AS old_row, CASE l.period WHEN 'daily' THEN 1 WHEN 'weekly' THEN 2
                                                WHEN 'monthly' THEN 3 ELSE 4 END AS horizon,
               coalesce(l.domain_id, 0) AS board, l.agent_id, l.rank, l.score, l.total_agents_in_domain AS total
        FROM leaderboard_rankings l
        WHERE l.period = ANY (v_periods)
    )
    INSERT INTO pg_temp.leaderboard_diff (period, board, agent_id, rank, total, score, action, old_row)
    SELECT (ARRAY['daily', 'weekly', 'monthly', 'all_time'])[coalesce(k.horizon, c.horizon)],
           coalesce(k.board, c.board), coalesce(k.agent_id, c.agent_id), k.rank, k.total, k.score,
           CASE WHEN k.agent_id IS NULL THEN 'd'
                WHEN c.agent_id IS NULL THEN 'i'
                WHEN (c.rank, c.score, c.total) = (k.rank, k.score, k.total) THEN '='
                ELSE 'u' END,
           c.old_row
    FROM ranked k
    FULL JOIN current_rows c ON c.horizon = k.horizon AND c.board = k.board AND c.agent_id = k.agent_id;

    -- The swap: these statements commit together, so a reader sees the previous board or
    -- the new one, never a mix; readers are never blocked (MVCC), only other refreshes.
    -- Only the difference is written: unchanged rows are not touched, changed rows are
    -- updated in place (no foreign key checks: the keys do not change), agents new on a
    -- board inserted, and the rows of agents that left a board deleted. Rows are reached
    -- by the ctid the diff saw, the key rechecked.
    DELETE FROM leaderboard_rankings lr
    USING pg_temp.leaderboard_diff n
    WHERE n.action = 'd' AND lr.ctid = n.old_row
      AND lr.agent_id = n.agent_id AND lr.period = n.period AND coalesce(lr.domain_id, 0) = n.board;
    UPDATE leaderboard_rankings lr
    SET rank = n.rank, score = n.score, total_agents_in_domain = n.total, computed_at = v_now
    FROM pg_temp.leaderboard_diff n
    WHERE n.action = 'u' AND lr.ctid = n.old_row
      AND lr.agent_id = n.agent_id AND lr.period = n.period AND coalesce(lr.domain_id, 0) = n.board;
    INSERT INTO leaderboard_rankings (agent_id, domain_id, rank, total_agents_in_domain, score, period,
                                      computed_at)
    SELECT n.agent_id, nullif(n.board, 0), n.rank, n.total, n.score, n.period, v_now
    FROM pg_temp.leaderboard_diff n
    WHERE n.action = 'i';
    INSERT INTO leaderboard_refreshes (period, refreshed_at, board_rows)
    SELECT p.period, v_now, coalesce(c.n, 0)
    FROM unnest(v_periods) p(period)
    LEFT JOIN (SELECT n.period, count(*) AS n FROM pg_temp.leaderboard_diff n WHERE n.action <> 'd'
               GROUP BY n.period) c
           ON c.period = p.period
    ON CONFLICT (period) DO UPDATE SET refreshed_at = excluded.refreshed_at, board_rows = excluded.board_rows;
    SELECT sum(board_rows) INTO written FROM leaderboard_refreshes WHERE period = ANY (v_periods);
    RETURN written;
END $$;
