-- Leaderboard refresh, second version: one pass over each base table for every period,
-- exact percentile ranks, meaningful tie-breaks, a change signal for the scheduler, the
-- complete views, and data retention (seed: tasks 2 years, messages 1 year).
--
-- The score of an agent on a board (a period and a domain, or the overall board) is
--   0.4 success + 0.3 tasks + 0.2 rating + 0.1 earnings, rounded to 2 decimals,
-- each component a 0..100 number over the period's window only:
--   success  = calculate_agent_success_rate(completed, failed) of tasks whose outcome
--              time -- coalesce(completed_at, started_at, created_at) -- is in the window
--   tasks    = 100 x percentile rank of the completed count among the board's agents:
--              (rank - 1) / (n - 1) with ties sharing the lowest rank; 0 on a board of
--              one. A whale with 10,000 tasks moves nobody else's component.
--   rating   = (smoothed_rating(sum, count) - 1) / 4 x 100 over the window's reviews
--              (Bayesian: prior 3.0 worth 5 reviews); no review in the window = the prior
--   earnings = 100 x percentile rank of SOL earned in the window (transaction_earning()
--              by block time), as for tasks
-- Windows: daily = last 24 h, weekly = 7 days, monthly = 30 days, all_time = everything.
-- Ranks: 1..n without gaps, by score desc, then completed desc, then earned desc, then
-- agents.agent_id (the public slug, unique) -- deterministic and explainable.
-- Every agent of a domain is on that domain's board; every agent is on the overall
-- board (domain_id NULL); total_agents_in_domain is the board's size.

-- What one refresh reads. All periods = one pass over each table (a parallel scan of
-- transactions); one period = a range scan from the window's start (transactions by
-- the existing idx_transactions_created_at; no extra index on the ingest path).
CREATE INDEX idx_tasks_outcome_at ON tasks ((coalesce(completed_at, started_at, created_at)))
    INCLUDE (agent_id, status)
    WHERE status IN ('completed', 'failed') AND agent_id IS NOT NULL;
CREATE INDEX idx_reviews_created_at ON reviews (created_at) INCLUDE (agent_id, rating);
-- The overall board's top N: `domain_id IS NULL` is not an equality, so the planner
-- cannot read idx_leaderboard_rank in rank order for it; this partial index it can.
CREATE INDEX idx_leaderboard_overall_rank ON leaderboard_rankings (period, rank) WHERE domain_id IS NULL;

-- A refresh updates most rows when anything moves, and every index costs a write per
-- updated row. One unique key leading with agent_id replaces two indexes: it answers
-- "this agent's rows" (the ON DELETE CASCADE from agents, an agent's ranks) and "this
-- (agent, period, board)" (the refresh's joins, the profile's overall rank).
DROP INDEX leaderboard_rankings_board_agent_key;  -- was (period, coalesce(domain_id, 0), agent_id)
DROP INDEX idx_leaderboard_agent_id;              -- was (agent_id)
CREATE UNIQUE INDEX leaderboard_rankings_board_agent_key
    ON leaderboard_rankings (agent_id, period, (COALESCE(domain_id, 0)));

-- A refresh rewrites most rows when anything moves (one agent's new payment shifts the
-- percentile and rank of many others), leaving ~one board of dead tuples behind: vacuum
-- this table after every ~10,000 of them rather than after 20 % of it.
ALTER TABLE leaderboard_rankings SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
                                      autovacuum_analyze_scale_factor = 0.5);

-- When each period's board was last computed (leaderboard_rankings.computed_at is when
-- that row last changed: unchanged rows are not rewritten).
CREATE TABLE leaderboard_refreshes (
    period       VARCHAR(20) PRIMARY KEY,
    refreshed_at TIMESTAMP NOT NULL,
    board_rows   INTEGER NOT NULL,
    CONSTRAINT leaderboard_refreshes_period_check
        CHECK (period IN ('daily', 'weekly', 'monthly', 'all_time'))
);

CREATE OR REPLACE FUNCTION update_leaderboard_rankings(p_period text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
SET plan_cache_mode = force_custom_plan  -- plan each refresh for its own window bounds
SET jit = off                            -- compiling costs more than it saves at this size
SET work_mem = '64MB'                    -- the board sorts (~120k rows) stay in memory
AS $$
DECLARE
    v_now   timestamp := timezone('utc', now());
    v_day   timestamp := timezone('utc', now()) - interval '1 day';
    v_week  timestamp := timezone('utc', now()) - interval '7 days';
    v_month timestamp := timezone('utc', now()) - interval '30 days';
    v_from  timestamp;  -- the oldest instant any requested period reads
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
    v_from := CASE p_period WHEN 'daily' THEN v_day WHEN 'weekly' THEN v_week
                            WHEN 'monthly' THEN v_month ELSE '-infinity' END;
    -- One refresh at a time (the daemon's runner, `amoca-indexer rank`, anyone); a second
    -- caller waits and then recomputes from what the first committed.
    PERFORM pg_advisory_xact_lock(hashtext('amoca.update_leaderboard_rankings'));

    CREATE TEMP TABLE IF NOT EXISTS pg_temp.leaderboard_next (
        period text, board integer, agent_id uuid, rank integer, total integer, score numeric(10, 2),
        present boolean,   -- the agent is on this board now
        unchanged boolean  -- with the same rank, score and board size
    ) ON COMMIT DROP;
    TRUNCATE pg_temp.leaderboard_next;

    -- One pass over each base table, grouped by agent: a column per window (cumulative).
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
               sum(earned) FILTER (WHERE created_at >= %1$L) AS e1,
               sum(earned) FILTER (WHERE created_at >= %2$L) AS e2,
               sum(earned) FILTER (WHERE created_at >= %3$L) AS e3,
               sum(earned) AS e4
        -- Rows outside SOL confirmed/refunded earn nothing (transaction_earning): skipped.
        FROM (SELECT x.agent_id, x.created_at,
                     transaction_earning(x.transaction_type, x.status, x.mint, x.amount) AS earned
              FROM transactions x
              WHERE x.mint IS NULL AND x.status IN ('confirmed', 'refunded') AND x.created_at >= %4$L) s
        GROUP BY agent_id
    )
    SELECT a.id AS agent_id, row_number() OVER (ORDER BY a.agent_id) AS slug_order,
           ARRAY[t.c1, t.c2, t.c3, t.c4] AS completed, ARRAY[t.f1, t.f2, t.f3, t.f4] AS failed,
           ARRAY[r.s1, r.s2, r.s3, r.s4] AS rating_sum, ARRAY[r.n1, r.n2, r.n3, r.n4] AS rating_n,
           ARRAY[e.e1, e.e2, e.e3, e.e4] AS earned
    FROM agents a
    LEFT JOIN task_windows t ON t.agent_id = a.id
    LEFT JOIN review_windows r ON r.agent_id = a.id
    LEFT JOIN earning_windows e ON e.agent_id = a.id
    $sql$, v_day, v_week, v_month, v_from);

    WITH agent_windows AS (  -- (horizon, agent) -> that window's sums
        SELECT h.horizon, a.agent_id, a.slug_order,
               coalesce(a.completed[h.horizon], 0) AS completed,
               coalesce(a.failed[h.horizon], 0) AS failed,
               a.rating_sum[h.horizon] AS rating_sum,
               a.rating_n[h.horizon] AS rating_n,
               coalesce(a.earned[h.horizon], 0) AS earned
        FROM pg_temp.leaderboard_agents a CROSS JOIN unnest(v_horizons) h(horizon)
    ),
    agent_components AS (  -- success and rating, weighted: they do not depend on the board
        SELECT horizon, agent_id, slug_order, completed, earned,
               0.4 * calculate_agent_success_rate(completed::integer, failed::integer)
               + 0.2 * (coalesce(smoothed_rating(rating_sum::bigint, rating_n), 3.0) - 1) / 4 * 100 AS base
        FROM agent_windows
    ),
    boards AS (  -- board 0 = the overall board, else the domain id
        SELECT c.*, ad.domain_id AS board FROM agent_components c JOIN agent_domains ad ON ad.agent_id = c.agent_id
        UNION ALL
        SELECT c.*, 0 FROM agent_components c
    ),
    percentiles AS (
        SELECT horizon, board, agent_id, slug_order, completed, earned, base,
               count(*) OVER w_completed AS n,
               rank() OVER (w_completed ORDER BY completed) AS completed_rank,
               rank() OVER (PARTITION BY horizon, board ORDER BY earned) AS earned_rank
        FROM boards
        WINDOW w_completed AS (PARTITION BY horizon, board)
    ),
    scored AS (
        SELECT horizon, board, agent_id, slug_order, completed, earned, n,
               round(base
                     + 0.3 * CASE WHEN n > 1 THEN 100.0 * (completed_rank - 1) / (n - 1) ELSE 0 END
                     + 0.1 * CASE WHEN n > 1 THEN 100.0 * (earned_rank - 1) / (n - 1) ELSE 0 END,
                     2) AS score
        FROM percentiles
    ),
    ranked AS (
        SELECT (ARRAY['daily', 'weekly', 'monthly', 'all_time'])[horizon] AS period, board, agent_id,
               row_number() OVER (PARTITION BY horizon, board
                                  ORDER BY score DESC, completed DESC, earned DESC, slug_order)::integer AS rank,
               n::integer AS total, score
        FROM scored
    )
    INSERT INTO pg_temp.leaderboard_next (period, board, agent_id, rank, total, score, present, unchanged)
    SELECT k.period, k.board, k.agent_id, k.rank, k.total, k.score, lr.agent_id IS NOT NULL,
           lr.agent_id IS NOT NULL
           AND (lr.rank, lr.score, lr.total_agents_in_domain) = (k.rank, k.score, k.total)
    FROM ranked k
    LEFT JOIN leaderboard_rankings lr
           ON lr.period = k.period AND coalesce(lr.domain_id, 0) = k.board AND lr.agent_id = k.agent_id;
    ANALYZE pg_temp.leaderboard_next;

    -- The swap: these statements commit together, so a reader sees the previous board or
    -- the new one, never a mix; readers are never blocked (MVCC), only other refreshes.
    -- Only the difference is written: rows that did not change are not touched (no
    -- write, no dead tuple), changed rows are updated in place (no foreign key checks),
    -- new rows inserted, and the rows of agents that left a board deleted.
    UPDATE leaderboard_rankings lr
    SET rank = n.rank, score = n.score, total_agents_in_domain = n.total, computed_at = v_now
    FROM pg_temp.leaderboard_next n
    WHERE n.present AND NOT n.unchanged
      AND lr.period = n.period AND coalesce(lr.domain_id, 0) = n.board AND lr.agent_id = n.agent_id;
    DELETE FROM leaderboard_rankings lr
    WHERE lr.period = ANY (v_periods)
      AND NOT EXISTS (SELECT 1 FROM pg_temp.leaderboard_next n
                      WHERE n.period = lr.period AND n.board = coalesce(lr.domain_id, 0)
                        AND n.agent_id = lr.agent_id);
    INSERT INTO leaderboard_rankings (agent_id, domain_id, rank, total_agents_in_domain, score, period,
                                      computed_at)
    SELECT n.agent_id, nullif(n.board, 0), n.rank, n.total, n.score, n.period, v_now
    FROM pg_temp.leaderboard_next n
    WHERE NOT n.present;
    INSERT INTO leaderboard_refreshes (period, refreshed_at, board_rows)
    SELECT p.period, v_now, coalesce(c.n, 0)
    FROM unnest(v_periods) p(period)
    LEFT JOIN (SELECT n.period, count(*) AS n FROM pg_temp.leaderboard_next n GROUP BY n.period) c
           ON c.period = p.period
    ON CONFLICT (period) DO UPDATE SET refreshed_at = excluded.refreshed_at, board_rows = excluded.board_rows;
    SELECT sum(board_rows) INTO written FROM leaderboard_refreshes WHERE period = ANY (v_periods);
    RETURN written;
END $$;

-- "Soon after stats change": every statement that changes what a board is computed from
-- signals amoca_stats_changed (payload: the table). The rankings runner LISTENs and
-- refreshes once the signals have been quiet for a moment (debounced in the daemon).
-- Statement-level, and silent when the statement touched no row; PostgreSQL folds
-- identical signals of one transaction into one, delivered at commit.
CREATE FUNCTION notify_stats_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
            RETURN NULL;
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('amoca_stats_changed', TG_TABLE_NAME);
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tasks', 'reviews', 'transactions', 'agent_domains', 'agents'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION notify_stats_changed()',
                       t || '_notify_stats_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION notify_stats_changed()',
                       t || '_notify_stats_delete', t);
        IF t <> 'agents' THEN  -- renaming an agent changes no score
            EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS new_rows'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION notify_stats_changed()',
                           t || '_notify_stats_update', t);
        END IF;
    END LOOP;
END $$;

-- The views, complete. Columns are only appended (CREATE OR REPLACE VIEW keeps the old
-- ones in place). Both serve the seed's sample queries from indexes:
--   top 100 of a board: idx_leaderboard_rank (period, domain_id, rank), then one primary
--   key probe per row into agents and agent_stats and one into agent_domains;
--   a full profile: agents.agent_id (unique), then primary key / agent_id probes.
CREATE OR REPLACE VIEW v_agent_leaderboard AS
SELECT a.id, a.agent_id AS agent_slug, a.name, a.avatar_url,
       ast.tasks_completed, ast.success_rate, ast.rating, ast.avg_rating, ast.total_earnings,
       ARRAY(SELECT d.name FROM agent_domains ad JOIN domains d ON d.id = ad.domain_id
             WHERE ad.agent_id = a.id ORDER BY ad.is_primary DESC, d.name) AS domains,
       lr.period, lr.domain_id, lr.rank, lr.score, lr.total_agents_in_domain,
       a.verified, a.status AS agent_status, lr.computed_at
FROM agents a
JOIN agent_stats ast ON ast.agent_id = a.id
LEFT JOIN leaderboard_rankings lr ON lr.agent_id = a.id;

CREATE OR REPLACE VIEW v_agent_profiles AS
SELECT a.*,
       ap.hourly_rate, ap.subscription_monthly, ap.per_task_rate, ap.currency,
       ast.tasks_completed, ast.tasks_failed, ast.success_rate, ast.avg_response_time_minutes,
       ast.total_earnings, ast.rating, ast.avg_rating, ast.review_count, ast.hire_count,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'id', d.id, 'name', d.name, 'icon', d.icon, 'is_primary', ad.is_primary,
                            'proficiency_level', ad.proficiency_level)
                        ORDER BY ad.is_primary DESC, d.name)
                 FROM agent_domains ad JOIN domains d ON d.id = ad.domain_id
                 WHERE ad.agent_id = a.id), '[]') AS domains,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'name', s.name, 'category', s.category, 'level', sk.level,
                            'years_experience', sk.years_experience) ORDER BY s.name)
                 FROM agent_skills sk JOIN skills s ON s.id = sk.skill_id
                 WHERE sk.agent_id = a.id), '[]') AS skills,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'id', c.id, 'title', c.title, 'issuer', c.issuer,
                            'credential_type', c.credential_type, 'credential_url', c.credential_url,
                            'onchain_address', c.onchain_address, 'verified', c.verified,
                            'issued_at', c.issued_at, 'expires_at', c.expires_at)
                        ORDER BY c.issued_at DESC NULLS LAST, c.title)
                 FROM credentials c WHERE c.agent_id = a.id), '[]') AS credentials,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                            'id', h.id, 'title', h.title, 'description', h.description,
                            'badge_icon', h.badge_icon, 'achieved_at', h.achieved_at)
                        ORDER BY h.achieved_at DESC, h.title)
                 FROM achievements h WHERE h.agent_id = a.id), '[]') AS achievements,
       (SELECT count(*) FROM agent_followers f WHERE f.agent_id = a.id) AS follower_count,
       overall.rank AS overall_rank, overall.score AS overall_score,
       overall.total_agents_in_domain AS overall_board_size
FROM agents a
LEFT JOIN agent_pricing ap ON a.id = ap.agent_id
LEFT JOIN agent_stats ast ON a.id = ast.agent_id
-- (coalesce(domain_id, 0) = 0 is domain_id IS NULL -- domain ids start at 1 -- spelled so
-- that the unique key (agent_id, period, coalesce(domain_id, 0)) answers it in one probe)
LEFT JOIN LATERAL (SELECT lr.rank, lr.score, lr.total_agents_in_domain FROM leaderboard_rankings lr
                   WHERE lr.period = 'all_time' AND coalesce(lr.domain_id, 0) = 0 AND lr.agent_id = a.id
                  ) overall ON true;

-- Data retention (seed: transactions and reviews permanent, tasks 2 years, messages
-- 1 year). A task expires when it is finished (completed, failed or cancelled) and its
-- last activity -- coalesce(completed_at, updated_at) -- is more than 2 years old; open
-- tasks never expire. Transactions and reviews are kept: their task_id becomes NULL
-- (the foreign keys are ON DELETE SET NULL), amounts, agents and ratings stay. A message
-- expires 1 year after created_at. Deleting tasks moves the task-derived stats (they
-- count the tasks that exist), exactly as the stats triggers define them.
CREATE INDEX idx_tasks_finished_at ON tasks ((coalesce(completed_at, updated_at)))
    WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX idx_messages_created_at ON messages (created_at);

CREATE FUNCTION retention_cutoffs()
RETURNS TABLE (table_name text, keep interval, cutoff timestamp)
LANGUAGE sql STABLE AS $$
    SELECT v.table_name, v.keep, timezone('utc', now()) - v.keep
    FROM (VALUES ('messages', interval '1 year'), ('tasks', interval '2 years')) v(table_name, keep)
$$;

-- How many rows each table would lose now (the dry run).
CREATE FUNCTION expired_row_counts()
RETURNS TABLE (table_name text, cutoff timestamp, expired bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.table_name, c.cutoff,
           CASE c.table_name
               WHEN 'messages' THEN (SELECT count(*) FROM messages m WHERE m.created_at < c.cutoff)
               WHEN 'tasks' THEN (SELECT count(*) FROM tasks t
                                  WHERE t.status IN ('completed', 'failed', 'cancelled')
                                    AND coalesce(t.completed_at, t.updated_at) < c.cutoff)
           END
    FROM retention_cutoffs() c
    ORDER BY c.table_name
$$;

-- Delete at most p_limit expired rows of one table (oldest first); returns how many.
-- Callers loop until it returns less than p_limit, one transaction per batch, so a large
-- backlog never holds locks or a snapshot for long.
CREATE FUNCTION prune_expired_rows(p_table text, p_limit integer DEFAULT 5000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_cutoff timestamp;
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
    ELSE
        DELETE FROM tasks WHERE id IN (
            SELECT id FROM tasks
            WHERE status IN ('completed', 'failed', 'cancelled')
              AND coalesce(completed_at, updated_at) < v_cutoff
            ORDER BY coalesce(completed_at, updated_at) LIMIT p_limit);
    END IF;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END $$;

REVOKE EXECUTE ON FUNCTION expired_row_counts(), prune_expired_rows(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION expired_row_counts(), prune_expired_rows(text, integer) TO amoca_indexer;
GRANT SELECT ON leaderboard_refreshes TO amoca_indexer, amoca_api, amoca_readonly;
