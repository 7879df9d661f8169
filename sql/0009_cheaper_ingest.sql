-- The base58 CHECK constraints again, cheaper to test (transactions here; users and
-- agents in 0011 and 0012), and a redundant index dropped.
-- PostgreSQL's regular-expression engine unrolls a bounded repeat such as {32,88} into
-- that many states and walks them for every row: the signature check alone cost 17 us
-- per inserted transaction row, a quarter of the whole insert (indexes, foreign keys
-- and stats triggers included). A length test plus an unbounded character class
-- accepts exactly the same strings (base58 is ASCII: one character, one byte).
-- Added NOT VALID (new rows are checked at once; the lock is held only for the catalog
-- change) and validated over existing rows by 0013, in its own transaction, where the
-- scan blocks neither reads nor writes.
-- One table per migration file, each holding ACCESS EXCLUSIVE only briefly and never two
-- at once: the daemon takes its locks in both orders (users then transactions in the
-- sink, transactions then users in the finality tracker's triggers), so one migration
-- locking two of them could deadlock with it. lock_timeout: rather than queue every
-- reader behind a lock it cannot get, the migration gives up and the runner retries it.
SET LOCAL lock_timeout = '5s';

ALTER TABLE transactions
    DROP CONSTRAINT transactions_signature_base58,
    ADD CONSTRAINT transactions_signature_base58 CHECK (
        length(transaction_signature) BETWEEN 32 AND 88
        AND transaction_signature ~ '^[1-9A-HJ-NP-Za-km-z]+$') NOT VALID;

-- One index less to write per transaction row (inserted, or updated by the finality
-- tracker: a status change is never a HOT update, every index gets a new entry):
-- idx_transactions_signature repeats the first column of the unique key
-- transactions_signature_agent_key (transaction_signature, agent_id), which answers every
-- lookup by signature (finality, refunds, the CLI) as well. It held 110-150 MB per
-- million rows (measured 11 MB per 100,000 signatures, packed; random inserts fill less).
DROP INDEX idx_transactions_signature;
