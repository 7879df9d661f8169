"""`amoca-indexer rank`: recompute the leaderboard rankings now."""

from __future__ import annotations

import time

import click

from indexer.commands import database_option, settings
from indexer.db.connection import connect, translate
from indexer.db.connection import database_url as resolve_database_url
from indexer.rankings import MAY_VACUUM_BOARD, PERIODS, VACUUM_BOARD


@click.command("rank")
@click.option("--period", type=click.Choice(PERIODS), default=None,
              help="Recompute only this period's boards (default: all four).")
@database_option
def command(period: str | None, database_url: str | None) -> None:
    """Run update_leaderboard_rankings() once, report the board sizes, vacuum the board."""
    import psycopg

    config = settings(database_url=database_url)
    with connect(resolve_database_url(config, announce=False)) as conn:
        started = time.monotonic()
        try:
            conn.execute("SELECT update_leaderboard_rankings(%s)", (period,))
            rows = conn.execute(
                "SELECT period, count(*) FILTER (WHERE domain_id IS NULL),"
                " count(DISTINCT domain_id), count(*) FROM leaderboard_rankings"
                " WHERE %s::text IS NULL OR period = %s GROUP BY 1 ORDER BY 1", (period, period)).fetchall()
            elapsed = time.monotonic() - started
            # A refresh rewrites most of the board; vacuumed now, as the daemon's runner
            # does, its dead rows do not wait for autovacuum.
            may = conn.execute(MAY_VACUUM_BOARD).fetchone()
            if may and may[0]:
                started = time.monotonic()
                conn.execute(VACUUM_BOARD)
                vacuum = f"board vacuumed in {time.monotonic() - started:.3f} s"
            else:
                vacuum = ("board left to autovacuum: this role may not VACUUM it"
                          " (its owner, a superuser, or MAINTAIN on PostgreSQL 17+ may)")
        except psycopg.Error as exc:
            raise translate(exc) from None
    for name, overall, domains, total in rows:
        click.echo(f"  {name:<9} {total} ranking rows: {overall} agents overall, {domains} domain boards")
    click.echo(f"rankings refreshed in {elapsed:.3f} s; {vacuum}")
