"""`amoca-indexer prune`: apply the data retention rules now (or say what they would delete)."""

from __future__ import annotations

import asyncio

import click

from indexer.commands import database_option, settings
from indexer.db.connection import connect_async
from indexer.db.connection import database_url as resolve_database_url
from indexer.errors import IndexerError


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Rows deleted per transaction.")
@database_option
def command(dry_run: bool, batch_size: int, database_url: str | None) -> None:
    """Delete tasks finished more than 2 years ago and messages older than 1 year.

    Transactions and reviews are kept forever (a pruned task's id becomes NULL on them).
    """
    config = settings(database_url=database_url)
    url = resolve_database_url(config, announce=False)
    asyncio.run(_run(url, dry_run=dry_run, batch_size=batch_size))


async def _run(url: str, *, dry_run: bool, batch_size: int) -> None:
    from indexer import retention

    async with await connect_async(url) as conn:
        expired = await retention.expired(conn)
        for item in expired:
            click.echo(f"  {item.table:<9} {item.rows} rows older than {item.cutoff:%Y-%m-%d %H:%M} UTC")
        if dry_run:
            click.echo("dry run: nothing deleted")
            return
        deleted = await retention.prune(conn, batch_size=batch_size)
    if deleted is None:
        raise IndexerError("another prune is running (retention lock held); nothing deleted")
    click.echo("deleted " + ", ".join(f"{n} {table}" for table, n in deleted.items()))
