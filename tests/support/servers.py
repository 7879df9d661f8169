"""PostgreSQL servers a test owns, to crash, restart or fail over (the suite's own server
is never touched so): ``own_server`` starts one with every migration applied;
``promoted_copy`` makes a failover's new primary of it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import conninfo

from indexer.db import embedded, migrations
from indexer.db.connection import EMBEDDED_DATABASE, ensure_database


@dataclass(frozen=True, slots=True)
class OwnServer:
    data_dir: Path
    url: str  # the migrated database

    @property
    def port(self) -> int:
        return int(conninfo.conninfo_to_dict(self.url)["port"])


@contextmanager
def own_server(*, durable: bool = True) -> Iterator[OwnServer]:
    """An embedded server for one test, in a folder of its own (not pytest's: see
    ``pg_admin_url``), stopped and deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="amoca-own-pg-"))
    data_dir = folder / "pg"
    try:
        server = embedded.start(data_dir, durable=durable)
        try:
            ensure_database(server.url(), EMBEDDED_DATABASE)
            url = server.url(EMBEDDED_DATABASE)
            with psycopg.connect(url, autocommit=True) as conn:
                migrations.migrate(conn)
                conn.execute("CHECKPOINT")  # a test's crash must not take the schema with it
            yield OwnServer(data_dir, url)
        finally:
            embedded.stop(data_dir, mode="immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def promoted_copy(primary: OwnServer, data_dir: Path) -> embedded.EmbeddedServer:
    """A copy of a running server's data as it is now (``pg_basebackup``), started as a
    server of its own. Like a standby promoted after an asynchronous primary's death, it
    holds what the primary had committed up to now and nothing after, and it is a new
    server life (``indexer.db.connection.server_life``)."""
    data_dir.mkdir(parents=True)
    if embedded._run_as() is not None:
        embedded._prepare_for_service_user(data_dir)
    copied = embedded._run([str(embedded._bin("pg_basebackup")), "-D", str(data_dir), "-h", "127.0.0.1",
                            "-p", str(primary.port), "-U", embedded.SUPERUSER, "-X", "stream",
                            "-c", "fast"], timeout=120)
    assert copied.returncode == 0, copied.stderr
    data_dir.chmod(0o700)  # as initdb leaves it: the server refuses a wider one
    return embedded.start(data_dir, durable=False)  # on a port of its own: the primary's is taken
