"""`amoca-indexer db url|start|stop|status`: the embedded PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.commands import settings
from indexer.config import redact_url
from indexer.db import embedded
from indexer.db.connection import EMBEDDED_DATABASE, database_url


def _data_dir() -> Path:
    config = settings()
    if config.database_url:
        raise click.UsageError(
            f"AMOCA_DATABASE_URL is set ({redact_url(config.database_url)}): "
            "the embedded server is not in use"
        )
    return Path(config.data_dir) / "pg"


@click.group("db")
def command() -> None:
    """Manage the embedded PostgreSQL under .amoca/ (used when AMOCA_DATABASE_URL is unset)."""


@command.command("url")
def url() -> None:
    """Print the database URL (starting the embedded server if needed)."""
    config = settings()
    if config.database_url:
        click.echo(redact_url(config.database_url))
        return
    _data_dir()
    click.echo(database_url(config, announce=False))


@command.command("start")
def start() -> None:
    """Start the embedded server (or reuse the running one)."""
    data_dir = _data_dir()
    url = database_url(settings(), announce=False)
    click.echo(f"embedded PostgreSQL running in {data_dir}: {url}")


@command.command("stop")
def stop() -> None:
    """Stop the embedded server."""
    data_dir = _data_dir()
    if embedded.stop(data_dir):
        click.echo(f"stopped embedded PostgreSQL in {data_dir}")
    else:
        click.echo(f"no embedded PostgreSQL running in {data_dir}")


@command.command("status")
def status() -> None:
    """Say whether the embedded server runs, and where."""
    data_dir = _data_dir()
    server = embedded.running(data_dir.resolve())
    if server is None:
        click.echo(f"not running (data directory {data_dir})")
        raise SystemExit(1)
    click.echo(f"running in {data_dir}, pid {server.pid}: {server.url(EMBEDDED_DATABASE)}")
