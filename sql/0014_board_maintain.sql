-- The rankings runner VACUUMs leaderboard_rankings after each refresh (a refresh rewrites
-- most of the board; see indexer/rankings.py). PostgreSQL 17 added the MAINTAIN privilege
-- for exactly this; on older servers only the table's owner may, and a runner logged in
-- as amoca_indexer leaves the board to autovacuum.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 170000 THEN
        EXECUTE 'GRANT MAINTAIN ON leaderboard_rankings TO amoca_indexer';
    END IF;
END $$;
