-- The users wallet CHECK, cheaper to test: see 0009 (same rule, same reasons).
-- One table per migration file, each holding ACCESS EXCLUSIVE only briefly and never two
-- at once: the daemon takes its locks in both orders (users then transactions in the
-- sink, transactions then users in the finality tracker's triggers), so one migration
-- locking two of them could deadlock with it. lock_timeout: rather than queue every
-- reader behind a lock it cannot get, the migration gives up and the runner retries it.
SET LOCAL lock_timeout = '5s';

ALTER TABLE users
    DROP CONSTRAINT users_wallet_address_base58,
    ADD CONSTRAINT users_wallet_address_base58 CHECK (
        length(wallet_address) BETWEEN 32 AND 44 AND wallet_address ~ '^[1-9A-HJ-NP-Za-km-z]+$') NOT VALID;
