"""`amoca-indexer rank`: recompute the leaderboard rankings now."""

from __future__ import annotations

import time

import click

from indexer.commands import database_option, settings
from indexer.db.connection import connect, translate
from indexer.db.connection import database_url as resolve_database_url


@click.command("rank")
@database_option
def command(database_url: str | None) -> None:
    """Run update_leaderboard_rankings() once and report the board sizes."""
    import psycopg

    config = settings(database_url=database_url)
    with connect(resolve_database_url(config, announce=False)) as conn:
        started = time.monotonic()
        try:
            conn.execute("SELECT update_leaderboard_rankings()")
        except psycopg.Error as exc:
            raise translate(exc) from None
        elapsed = time.monotonic() - started
        rows = conn.execute(
            "SELECT period, count(*) FROM leaderboard_rankings GROUP BY 1 ORDER BY 1").fetchall()
    for period, count in rows:
        click.echo(f"  {period:<9} {count} ranking rows")
    click.echo(f"rankings refreshed in {elapsed:.3f} s")
