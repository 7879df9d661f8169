-- A backfill without --until covers a wallet's history as it was when it began, yet the
-- wallet goes on: the same command run again, after it finished or after a crash, must
-- also cover what arrived since. So its newest FINALIZED signature is kept: a run first
-- lists back to it (getSignaturesForAddress until=it, a range of its own, resumable like
-- any other), then resumes what is unfinished below. Finalized, because a node asked for
-- `until=<a signature forked away>` pages the whole history (the cursors' rule, 0004).
-- NULL: not known (a range with --until, which is complete once done, or a row written
-- before this file, whose next run lists what is unfinished and nothing newer).
SET LOCAL lock_timeout = '5s';

ALTER TABLE backfill_progress ADD COLUMN newest_signature VARCHAR(88);
