-- Leaderboard rankings (seed: success rate 40%, tasks completed 30%, average rating 20%,
-- total earnings 10%), per period and per domain plus an overall board (domain_id NULL).
--
-- Every component is a 0..100 number computed from the base tables within the period's
-- window (tasks by completed_at, reviews by created_at, transactions by block time):
--   success   = calculate_agent_success_rate(completed, failed) in the window
--   tasks     = percent rank of tasks completed within the board (robust to one whale)
--   rating    = (smoothed_rating - 1) / 4 * 100, the Bayesian rating of the window's
--               reviews (prior 3.0 worth 5 reviews; no reviews = the prior)
--   earnings  = percent rank of SOL earnings within the board
-- score = 0.4 success + 0.3 tasks + 0.2 rating + 0.1 earnings, 2 decimals; ties broken by
-- agent id so ranks are deterministic. A board holds every agent of its domain.

CREATE FUNCTION update_leaderboard_rankings(p_period text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    written integer;
BEGIN
    IF p_period IS NOT NULL AND p_period NOT IN ('daily', 'weekly', 'monthly', 'all_time') THEN
        RAISE EXCEPTION 'unknown leaderboard period %', p_period USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One refresh at a time; readers keep seeing the previous board until commit.
    PERFORM pg_advisory_xact_lock(hashtext('amoca.update_leaderboard_rankings'));
    DELETE FROM leaderboard_rankings WHERE p_period IS NULL OR period = p_period;
    WITH periods(period, since) AS (
        SELECT * FROM (VALUES
            ('daily',    timezone('utc', now()) - interval '1 day'),
            ('weekly',   timezone('utc', now()) - interval '7 days'),
            ('monthly',  timezone('utc', now()) - interval '30 days'),
            ('all_time', '-infinity'::timestamp)) v(period, since)
        WHERE p_period IS NULL OR v.period = p_period
    ),
    task_window AS (
        SELECT p.period, t.agent_id,
               count(*) FILTER (WHERE t.status = 'completed') AS completed,
               count(*) FILTER (WHERE t.status = 'failed') AS failed
        FROM periods p
        JOIN tasks t ON coalesce(t.completed_at, t.started_at, t.created_at) >= p.since
                    AND t.status IN ('completed', 'failed') AND t.agent_id IS NOT NULL
        GROUP BY p.period, t.agent_id
    ),
    review_window AS (
        SELECT p.period, r.agent_id, sum(r.rating)::bigint AS total, count(*) AS n
        FROM periods p JOIN reviews r ON r.created_at >= p.since
        GROUP BY p.period, r.agent_id
    ),
    earning_window AS (
        SELECT p.period, x.agent_id,
               sum(transaction_earning(x.transaction_type, x.status, x.mint, x.amount)) AS earned
        FROM periods p JOIN transactions x ON x.created_at >= p.since AND x.mint IS NULL
        GROUP BY p.period, x.agent_id
    ),
    boards AS (  -- (period, domain or NULL for overall, agent)
        SELECT p.period, ad.domain_id, ad.agent_id FROM periods p CROSS JOIN agent_domains ad
        UNION ALL
        SELECT p.period, NULL::integer, a.id FROM periods p CROSS JOIN agents a
    ),
    components AS (
        SELECT b.period, b.domain_id, b.agent_id,
               calculate_agent_success_rate(coalesce(tw.completed, 0)::integer,
                                            coalesce(tw.failed, 0)::integer) AS success,
               coalesce(tw.completed, 0) AS completed,
               (coalesce(smoothed_rating(rw.total, rw.n), 3.0) - 1) / 4 * 100 AS rating,
               coalesce(ew.earned, 0) AS earned
        FROM boards b
        LEFT JOIN task_window tw ON tw.period = b.period AND tw.agent_id = b.agent_id
        LEFT JOIN review_window rw ON rw.period = b.period AND rw.agent_id = b.agent_id
        LEFT JOIN earning_window ew ON ew.period = b.period AND ew.agent_id = b.agent_id
    ),
    scored AS (
        SELECT period, domain_id, agent_id,
               round(0.4 * success
                     + 0.3 * 100 * (percent_rank() OVER (PARTITION BY period, domain_id ORDER BY completed))::numeric
                     + 0.2 * rating
                     + 0.1 * 100 * (percent_rank() OVER (PARTITION BY period, domain_id ORDER BY earned))::numeric,
                     2) AS score
        FROM components
    )
    INSERT INTO leaderboard_rankings (agent_id, domain_id, rank, total_agents_in_domain, score, period)
    SELECT agent_id, domain_id,
           row_number() OVER (PARTITION BY period, domain_id ORDER BY score DESC, agent_id),
           count(*) OVER (PARTITION BY period, domain_id),
           score, period
    FROM scored;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$;

-- One row per agent and board it is ranked on (agents never ranked appear once, with
-- NULL board columns). The seed's unfinished GROUP BY is replaced by an ARRAY subquery,
-- evaluated only for the rows a query returns (a top-100 reads 100 agents' domains).
CREATE VIEW v_agent_leaderboard AS
SELECT a.id, a.agent_id AS agent_slug, a.name, a.avatar_url,
       ast.tasks_completed, ast.success_rate, ast.rating, ast.avg_rating, ast.total_earnings,
       ARRAY(SELECT d.name FROM agent_domains ad JOIN domains d ON d.id = ad.domain_id
             WHERE ad.agent_id = a.id ORDER BY ad.is_primary DESC, d.name) AS domains,
       lr.period, lr.domain_id, lr.rank, lr.score, lr.total_agents_in_domain
FROM agents a
JOIN agent_stats ast ON ast.agent_id = a.id
LEFT JOIN leaderboard_rankings lr ON lr.agent_id = a.id;

CREATE VIEW v_agent_profiles AS
SELECT a.*,
       ap.hourly_rate, ap.subscription_monthly, ap.per_task_rate, ap.currency,
       ast.tasks_completed, ast.tasks_failed, ast.success_rate, ast.avg_response_time_minutes,
       ast.total_earnings, ast.rating, ast.avg_rating, ast.review_count, ast.hire_count
FROM agents a
LEFT JOIN agent_pricing ap ON a.id = ap.agent_id
LEFT JOIN agent_stats ast ON a.id = ast.agent_id;
