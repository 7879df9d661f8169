-- A server life: a token that lasts while no commit the server acknowledged can have been
-- lost. The indexer's work goes on from what it committed (a backfill's next page from
-- its progress, the daemon's gap-fill from its cursors); a server that lost some of those
-- commits must make it start over from what the database holds instead.
-- Commits are lost only by a crash (of the server, or of one backend: the postmaster then
-- resets shared memory, and commits made with synchronous_commit off that were still in
-- its WAL buffers are gone -- the postmaster, and its start time, stay the same) or by a
-- failover to a standby that lacked them. Both start from an empty UNLOGGED table: crash
-- recovery truncates it, and a standby has no content for it. The first session to ask
-- after such an event draws the new token; concurrent first askers agree on one. The
-- life also names the postmaster's start, so that a database copied with its token (a
-- dump restored elsewhere carries unlogged tables' rows) is not the same life; a clean
-- restart, which loses nothing, is then a new life too: work starts over from what the
-- database holds, which costs a little and is always right.
SET LOCAL lock_timeout = '5s';

CREATE UNLOGGED TABLE indexer_server_life (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    life UUID NOT NULL DEFAULT gen_random_uuid(),
    began_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION indexer_server_life() RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    drawn uuid;
BEGIN
    SELECT life INTO drawn FROM indexer_server_life;
    IF drawn IS NULL THEN
        INSERT INTO indexer_server_life DEFAULT VALUES ON CONFLICT (one) DO NOTHING
        RETURNING life INTO drawn;
        IF drawn IS NULL THEN  -- drawn by another session meanwhile: its statement's
            SELECT life INTO drawn FROM indexer_server_life;  -- snapshot is newer
        END IF;
    END IF;
    RETURN md5(drawn::text || pg_postmaster_start_time()::text)::uuid;
END $$;

REVOKE ALL ON indexer_server_life FROM PUBLIC;
GRANT SELECT, INSERT ON indexer_server_life TO amoca_indexer;
