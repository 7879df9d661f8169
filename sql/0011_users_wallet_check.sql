-- The users wallet CHECK, cheaper to test: see 0009 (same rule, same reasons).
-- One table per file, lock_timeout set: see 0009 for why.
SET LOCAL lock_timeout = '5s';

ALTER TABLE users
    DROP CONSTRAINT users_wallet_address_base58,
    ADD CONSTRAINT users_wallet_address_base58 CHECK (
        length(wallet_address) BETWEEN 32 AND 44 AND wallet_address ~ '^[1-9A-HJ-NP-Za-km-z]+$') NOT VALID;
