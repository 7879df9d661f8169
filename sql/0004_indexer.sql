-- Tables the indexer owns.

-- Per watched wallet: the newest FINALIZED signature such that every older one is processed.
CREATE TABLE indexer_cursors (
    wallet_address VARCHAR(44) PRIMARY KEY,
    signature      VARCHAR(88),
    slot           BIGINT,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Input that could not be processed, kept with the raw payload and the reason, for replay.
CREATE TABLE dead_letters (
    id             BIGSERIAL PRIMARY KEY,
    signature      VARCHAR(88),
    wallet_address VARCHAR(44),
    stage          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    error          TEXT,
    payload        TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at    TIMESTAMPTZ
);
CREATE INDEX idx_dead_letters_open ON dead_letters (stage, reason) WHERE resolved_at IS NULL;
CREATE INDEX idx_dead_letters_signature ON dead_letters (signature);

-- Resumable backfills: per wallet and range, the oldest signature of the last committed page.
CREATE TABLE backfill_progress (
    wallet_address   VARCHAR(44) NOT NULL,
    range_key        TEXT NOT NULL,
    before_signature VARCHAR(88),
    done             BOOLEAN NOT NULL DEFAULT false,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet_address, range_key)
);
