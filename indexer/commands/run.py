"""`amoca-indexer run`: the indexing daemon."""

from __future__ import annotations

import asyncio
from typing import Any

import click
import psycopg

from indexer.commands import database_option, settings
from indexer.config import Settings
from indexer.db import migrations
from indexer.db.connection import connect
from indexer.db.connection import database_url as resolve_database_url


def ensure_schema(url: str, config: Settings, *, migrate: bool) -> None:
    """Refuse to index into a schema that is behind, unless told (or embedded) to migrate."""
    with connect(url) as conn:
        schema_ready(conn, config, migrate=migrate)


def schema_ready(conn: psycopg.Connection[Any], config: Settings, *, migrate: bool,
                 offers_migrate: bool = True) -> None:
    """:func:`ensure_schema` on a connection the caller holds; ``offers_migrate``: the
    command has a ``--migrate`` flag to suggest."""
    plan = migrations.migrate(conn, dry_run=True)
    if plan.pending:
        if not (migrate or config.database_url is None):
            raise click.UsageError(
                f"the database schema is behind by {len(plan.pending)} migration(s): "
                "run `amoca-indexer migrate` first" + (" (or pass --migrate)" if offers_migrate else ""))
        migrations.migrate(conn)


@click.command("run")
@database_option
@click.option("--rpc-url", "rpc_urls", multiple=True, metavar="URL",
              help="HTTP JSON-RPC endpoint; repeat for fail-over (default: AMOCA_RPC_URL).")
@click.option("--ws-url", metavar="URL", default=None, help="PubSub websocket (default: derived).")
@click.option("--shard", metavar="i/N", default=None, help="Watch wallets with hash mod N == i.")
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics, /healthz, /readyz.")
@click.option("--migrate", is_flag=True, help="Apply pending migrations before starting.")
def command(database_url: str | None, rpc_urls: tuple[str, ...], ws_url: str | None,
            shard: str | None, metrics_port: int | None, migrate: bool) -> None:
    """Run the indexing daemon until SIGTERM/SIGINT."""
    from indexer.daemon import Daemon

    config = settings(database_url=database_url, rpc_urls=list(rpc_urls) or None, ws_url=ws_url,
                      shard=shard, metrics_port=metrics_port)
    url = resolve_database_url(config)
    ensure_schema(url, config, migrate=migrate)
    asyncio.run(Daemon(config, url).run())
