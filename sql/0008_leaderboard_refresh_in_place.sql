-- Leaderboard refresh, third version (issue #7: all four periods at 10,000 agents,
-- 1M transactions, 200k tasks, 100k reviews in under 2 s). The scoring is the one
-- documented at the top of 0006, unchanged; the tables, indexes, views, grants and the
-- function's signature are unchanged. What changed is how a refresh computes and writes:
--
-- 1. Scores in exact integers. On a board of n agents, with b the agent's
--    0.4 success + 0.2 rating in thousandths (calculate_agent_success_rate() and
--    smoothed_rating() have 2 decimals, so b is an integer), and c / e how many agents of
--    the board completed fewer tasks / earned less (rank - 1 of the percentile ranks):
--        score x 1000 = b + (30000 c + 10000 e) / (n - 1)
--        score x 100  = floor((b (n - 1) + 30000 c + 10000 e + 5 (n - 1)) / (10 (n - 1)))
--    i.e. rounded half up, as documented, in bigint arithmetic (n = 1: (b + 5) / 10).
--    0006 summed two numeric quotients, each cut after ~20 digits, and so could round an
--    exact half down: 50 + 30 x 1/112 + 10 x 4/112 = 50.625 gave 50.62 (now 50.63; a
--    test pins it). They can differ only on such exact halves (an error of ~10^-20 cannot
--    otherwise cross a rounding boundary); on the benchmark's data both versions' boards
--    are equal row for row. The rank sort compares the score as an integer (hundredths).
-- 2. Earnings: one pass over the SOL rows that earn something (confirmed or refunded,
--    a refund only when confirmed: transaction_earning()'s non-zero cases, as a CASE),
--    each amount turned into bigint lamports (x 10^9, exact: amounts are numeric(18, 9),
--    below 10^18 lamports) and summed by sum(bigint) -- 128-bit accumulators, an exact
--    numeric result, so no total can overflow -- instead of numeric additions through
--    the function: ~200 ms instead of ~270 ms for that scan and aggregate (one run each).
-- 3. One diff instead of three. A FULL JOIN of the new board with the current rows of
--    the refreshed periods classifies every row once (insert, update, delete, unchanged)
--    and keeps the current row's ctid; the UPDATE and DELETE then reach their rows by
--    that ctid (a TID scan per row, the key rechecked -- a slot reused after a concurrent
--    cascade delete cannot be mistaken for the row) instead of joining the table again.
--    (A row someone else updated in between -- only the owner can write the board -- is
--    skipped, and put right by the next refresh.) The staging table is no longer
--    ANALYZEd (~70 ms): the planner's default guess for `action = ...` gives the TID
--    scans wanted.
--
-- 4. Every window, all_time too, is computed from the base tables, as the issue asks
--    (not from agent_stats): one pass from the widest window the refresh needs (the
--    whole history for a full or all_time refresh), a FILTER column per window.
--
-- The write stays an in-place UPDATE / DELETE / INSERT, as in 0006, and only the rows
-- that changed are written. Measured and rejected (issue #7's idea 1):
--   - building the next board in a fresh table, indexes and foreign keys added after the
--     fill, then renaming it in place of leaderboard_rankings (views re-pointed, grants
--     copied). It writes a board in ~0.3 s (insert 93 ms, indexes 134 ms, foreign keys
--     19 ms, ANALYZE 57 ms) instead of the UPDATE's ~0.75 s, but: (a) the
--     rename holds ACCESS EXCLUSIVE on leaderboard_rankings until the *caller* commits,
--     so a refresh run inside a longer transaction blocks every reader for that long
--     (tests/db/test_rankings.py holds one open to check readers are not blocked);
--     (b) it is not MVCC-safe: a REPEATABLE READ / SERIALIZABLE reader whose snapshot
--     predates the swap finds the new table empty (checked: 0 rows instead of the board),
--     the same hazard as TRUNCATE; (c) adding the foreign keys takes SHARE ROW EXCLUSIVE
--     on agents and domains (their writers wait), and every refresh would create and drop
--     a table, three indexes, two constraints and their triggers.
--   - TRUNCATE + INSERT: ACCESS EXCLUSIVE for the whole transaction and the same MVCC
--     hazard; DELETE + INSERT of every row: MVCC-safe but ~1.15 s for 120k rows, the
--     per-row foreign key checks costing more than the UPDATE (which skips them: the key
--     columns do not change).
--   - btree deduplicate_items = off and a lower fillfactor on the board: within the noise
--     (~90 % of the updated rows change rank, an indexed column, so no update is HOT).
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
           ARRAY[t.c1, t.c2, t.c3, t.c4]::integer[] AS completed,
           ARRAY[t.f1, t.f2, t.f3, t.f4]::integer[] AS failed,
           ARRAY[smoothed_rating(r.s1, r.n1), smoothed_rating(r.s2, r.n2), smoothed_rating(r.s3, r.n3),
                 smoothed_rating(r.s4, r.n4)] AS rating,
           ARRAY[e.e1, e.e2, e.e3, e.e4] AS earned
    FROM agents a
    LEFT JOIN task_windows t ON t.agent_id = a.id
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
