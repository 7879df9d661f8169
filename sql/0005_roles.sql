-- Least privilege (seed security section). Roles are cluster-wide, so created once.
--   amoca_indexer  : the daemon. Reads agents/tasks; writes transactions, counterparty
--                    users (by wallet) and its own tables; refreshes rankings only through
--                    update_leaderboard_rankings() (SECURITY DEFINER). Cannot touch
--                    profiles, tasks, reviews, messages, stats or rankings directly: the
--                    stats triggers run as their owner (SECURITY DEFINER).
--   amoca_api      : the marketplace application, under row-level security keyed on
--                    the session setting amoca.user_id.
--   amoca_readonly : dashboards and analysts; no private user columns, no messages.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'amoca_indexer') THEN
        CREATE ROLE amoca_indexer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'amoca_api') THEN
        CREATE ROLE amoca_api NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'amoca_readonly') THEN
        CREATE ROLE amoca_readonly NOLOGIN;
    END IF;
END $$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION update_leaderboard_rankings(text), recompute_agent_stats() FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO amoca_indexer, amoca_api, amoca_readonly;

-- The indexer.
GRANT SELECT ON agents, tasks, domains, agent_domains, agent_stats, leaderboard_rankings
    TO amoca_indexer;
GRANT SELECT (id, wallet_address), INSERT (wallet_address) ON users TO amoca_indexer;
GRANT SELECT, INSERT, UPDATE ON transactions TO amoca_indexer;
GRANT SELECT, INSERT, UPDATE, DELETE ON indexer_cursors, dead_letters, backfill_progress TO amoca_indexer;
GRANT USAGE ON SEQUENCE dead_letters_id_seq TO amoca_indexer;
GRANT EXECUTE ON FUNCTION update_leaderboard_rankings(text) TO amoca_indexer;

-- The marketplace application.
GRANT SELECT, INSERT, UPDATE, DELETE ON users, agents, agent_domains, skills, agent_skills,
    agent_pricing, credentials, achievements, tasks, reviews, agent_followers, messages TO amoca_api;
GRANT SELECT ON domains, agent_stats, leaderboard_rankings, transactions,
    v_agent_leaderboard, v_agent_profiles TO amoca_api;
GRANT INSERT ON transactions TO amoca_api;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO amoca_api;

-- Read-only.
GRANT SELECT ON agents, domains, agent_domains, skills, agent_skills, agent_stats, agent_pricing,
    credentials, achievements, tasks, reviews, leaderboard_rankings, agent_followers, transactions,
    v_agent_leaderboard, v_agent_profiles TO amoca_readonly;
GRANT SELECT (id, wallet_address, username, avatar_url, bio, created_at, is_verified,
              reputation_score, total_spent) ON users TO amoca_readonly;

-- Row-level security for the application's per-user data.
CREATE FUNCTION amoca_current_user_id() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('amoca.user_id', true), '')::uuid
$$;
CREATE FUNCTION amoca_owns_agent(agent uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM agents WHERE id = agent AND creator_user_id = amoca_current_user_id())
$$;

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY messages_participants ON messages TO amoca_api
    USING (sender_user_id = amoca_current_user_id() OR amoca_owns_agent(recipient_agent_id))
    WITH CHECK (sender_user_id = amoca_current_user_id());

ALTER TABLE agent_followers ENABLE ROW LEVEL SECURITY;
CREATE POLICY followers_public_read ON agent_followers FOR SELECT TO amoca_api, amoca_readonly USING (true);
CREATE POLICY followers_own_write ON agent_followers FOR ALL TO amoca_api
    USING (user_id = amoca_current_user_id()) WITH CHECK (user_id = amoca_current_user_id());

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tasks_indexer_read ON tasks FOR SELECT TO amoca_indexer, amoca_readonly USING (true);
CREATE POLICY tasks_parties ON tasks TO amoca_api
    USING (user_id = amoca_current_user_id() OR amoca_owns_agent(agent_id))
    WITH CHECK (user_id = amoca_current_user_id() OR amoca_owns_agent(agent_id));

ALTER TABLE reviews ENABLE ROW LEVEL SECURITY;
CREATE POLICY reviews_public_read ON reviews FOR SELECT TO amoca_api, amoca_readonly USING (true);
CREATE POLICY reviews_own_write ON reviews FOR ALL TO amoca_api
    USING (user_id = amoca_current_user_id()) WITH CHECK (user_id = amoca_current_user_id());

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_public_read ON users FOR SELECT TO amoca_api, amoca_readonly, amoca_indexer USING (true);
CREATE POLICY users_self_update ON users FOR UPDATE TO amoca_api
    USING (id = amoca_current_user_id()) WITH CHECK (id = amoca_current_user_id());
CREATE POLICY users_sign_up ON users FOR INSERT TO amoca_api, amoca_indexer WITH CHECK (true);
