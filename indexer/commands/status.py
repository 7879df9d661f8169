"""`amoca-indexer status`: cursors, slot lag, pending rows, dead letters, backfills."""

from __future__ import annotations

import asyncio
from typing import Any

import click
import orjson

from indexer.commands import database_option, settings
from indexer.config import redact_url
from indexer.db.connection import connect
from indexer.db.connection import database_url as resolve_database_url

_QUERIES = {
    "watched_wallets": "SELECT count(*) FROM agents",
    "wallets_with_cursor": "SELECT count(*) FROM indexer_cursors WHERE signature IS NOT NULL",
    "newest_cursor_slot": "SELECT max(slot) FROM indexer_cursors",
    "oldest_cursor_slot": "SELECT min(slot) FROM indexer_cursors",
    "pending_rows": "SELECT count(*) FROM transactions WHERE status = 'pending'",
    "oldest_pending_slot": "SELECT min(slot) FROM transactions WHERE status = 'pending'",
    "transactions": "SELECT count(*) FROM transactions",
    "dead_letters_open": "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL",
    # Backfills store progress per address and range after every committed page.
    "backfill_addresses_done": "SELECT count(*) FROM backfill_progress WHERE done",
    "backfill_addresses_unfinished": "SELECT count(*) FROM backfill_progress WHERE NOT done",
    "backfill_last_progress_at": "SELECT max(updated_at) FROM backfill_progress",
}


# The wallets whose backfills a stop left unfinished (the command to run again names them):
# a token account's progress counts for the agent wallet that owns it. The most recently
# moved first; a row from before sql/0018 names its token account instead.
_UNFINISHED = """
SELECT coalesce(owner_wallet, wallet_address), count(*) FROM backfill_progress WHERE NOT done
GROUP BY 1 ORDER BY max(updated_at) DESC, 1 LIMIT %s
"""
_UNFINISHED_SHOWN = 20


async def _chain_slot(urls: tuple[str, ...]) -> int | None:
    from indexer.rpc import RpcClient

    try:
        async with RpcClient(urls, give_up_after=5.0) as rpc:
            return int(await rpc.get_slot("confirmed"))
    except Exception:
        return None


def gather(url: str, rpc_urls: tuple[str, ...]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with connect(url) as conn:
        for name, query in _QUERIES.items():
            row = conn.execute(query).fetchone()
            report[name] = row[0] if row else None
        report["dead_letters_by_reason"] = dict(conn.execute(
            "SELECT stage || ':' || reason, count(*) FROM dead_letters WHERE resolved_at IS NULL"
            " GROUP BY 1 ORDER BY 2 DESC").fetchall())
        report["transactions_by_status"] = dict(conn.execute(
            "SELECT status, count(*) FROM transactions GROUP BY 1 ORDER BY 1").fetchall())
        report["backfill_unfinished_by_wallet"] = dict(
            conn.execute(_UNFINISHED, (_UNFINISHED_SHOWN,)).fetchall())
    chain = asyncio.run(_chain_slot(rpc_urls))
    report["rpc"] = [redact_url(u) for u in rpc_urls]
    report["chain_slot"] = chain
    newest = report.get("newest_cursor_slot")
    report["cursor_slot_lag"] = chain - newest if chain is not None and newest is not None else None
    return report


@click.command("status")
@database_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(database_url: str | None, as_json: bool) -> None:
    """Show cursors, slot lag, pending rows, dead letters and backfill progress."""
    config = settings(database_url=database_url)
    report = gather(resolve_database_url(config, announce=False), config.rpc_urls)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="amoca-indexer status", show_header=False)
    for key, value in report.items():
        text = "unknown" if value is None else str(value)
        if isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        elif isinstance(value, list):
            text = ", ".join(value)
        table.add_row(key.replace("_", " "), text)
    Console().print(table)
