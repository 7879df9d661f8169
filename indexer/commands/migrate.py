"""`amoca-indexer migrate`: apply pending sql/ migrations."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.commands import database_option, settings
from indexer.db import migrations
from indexer.db.connection import connect
from indexer.db.connection import database_url as resolve_url


@click.command("migrate")
@database_option
@click.option("--dry-run", is_flag=True, help="List what would be applied; change nothing.")
@click.option("--sql-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of NNNN_name.sql files (default: the project's sql/).")
def command(database_url: str | None, dry_run: bool, sql_dir: Path | None) -> None:
    """Apply pending migrations in order: idempotent, locked, checksummed."""
    url = resolve_url(settings(database_url=database_url))
    with connect(url) as conn:
        result = migrations.migrate(conn, sql_dir, dry_run=dry_run)
    for migration in result.applied:
        click.echo(f"  applied  {migration.filename}")
    verb = "pending " if dry_run else "applying"
    for migration in result.pending:
        click.echo(f"  {verb} {migration.filename}")
    if dry_run:
        click.echo(f"{len(result.pending)} migration(s) would be applied (dry run).")
    else:
        click.echo(f"{len(result.pending)} migration(s) applied; schema is up to date.")
