"""`amoca-indexer status` reads the database as an operator needs it, backfills included."""

from __future__ import annotations

import psycopg

from indexer.commands.status import gather


def test_status_reports_cursors_rows_dead_letters_and_backfills(
        conn: psycopg.Connection, db_url: str) -> None:
    conn.execute("INSERT INTO indexer_cursors (wallet_address, signature, slot) VALUES"
                 " ('Wa11et1111111111111111111111111111111111111', 'sig1', 90),"
                 " ('Wa11et2222222222222222222222222222222222222', 'sig2', 120)")
    conn.execute("INSERT INTO dead_letters (stage, reason, error) VALUES"
                 " ('decode', 'bad_field', 'x'), ('decode', 'bad_field', 'y'), ('fetch', 'timeout', 'z')")
    conn.execute("INSERT INTO backfill_progress (wallet_address, range_key, before_signature, done,"
                 " owner_wallet, updated_at) VALUES"
                 " ('Wa11et1111111111111111111111111111111111111', 'k', NULL, true, NULL, now()),"
                 " ('Wa11et2222222222222222222222222222222222222', 'k', 'sig9', false, NULL, now()),"
                 " ('Wa11et3333333333333333333333333333333333333', 'k', 'sig8', false, NULL,"
                 "  now() - interval '1 hour'),"
                 " ('TokenAccount11111111111111111111111111111111', 'k', 'sig7', false,"
                 "  'Wa11et3333333333333333333333333333333333333', now() - interval '2 hours')")
    report = gather(db_url, ())  # no RPC endpoint: the chain's slot is unknown, not an error
    assert (report["wallets_with_cursor"], report["newest_cursor_slot"], report["oldest_cursor_slot"]) \
        == (2, 120, 90)
    assert report["dead_letters_open"] == 3
    assert report["dead_letters_by_reason"] == {"decode:bad_field": 2, "fetch:timeout": 1}
    assert (report["backfill_addresses_done"], report["backfill_addresses_unfinished"]) == (1, 3)
    # by agent wallet, a token account's counting for its owner; the most recently moved first
    assert list(report["backfill_unfinished_by_wallet"].items()) == [
        ("Wa11et2222222222222222222222222222222222222", 1),
        ("Wa11et3333333333333333333333333333333333333", 2)]
    assert report["backfill_last_progress_at"] is not None
    assert (report["chain_slot"], report["cursor_slot_lag"]) == (None, None)
