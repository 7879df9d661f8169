-- An agent's token accounts are backfilled beside its wallet, but not every one is listed
-- by getTokenAccountsByOwner: one the agent has closed is found only while the backfill
-- reads the wallet's history. A run stopped before such an account's listing finished
-- must resume it the next time, even when the wallet's own range is done and its history
-- is not read again. So a token account's progress names the wallet that owns it: a run
-- of that wallet's range lists every account it owns there, found by a run before or not.
-- NULL: the address is an agent wallet itself (or a row written before this file).
SET LOCAL lock_timeout = '5s';

ALTER TABLE backfill_progress ADD COLUMN owner_wallet VARCHAR(44);
CREATE INDEX idx_backfill_progress_owner ON backfill_progress (owner_wallet, range_key)
    WHERE owner_wallet IS NOT NULL;
