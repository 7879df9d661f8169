"""A failover's new primary, for tests that own their PostgreSQL: a copy of a running
embedded server's data as it is at one moment (``pg_basebackup``), started as a server
of its own. Like a standby promoted after an asynchronous primary's death, it holds what
the primary had committed up to that moment and nothing after, and it is a new server
life (``indexer.db.connection.server_life``)."""

from __future__ import annotations

from pathlib import Path

from indexer.db import embedded


def promoted_copy(primary: embedded.EmbeddedServer, data_dir: Path) -> embedded.EmbeddedServer:
    data_dir.mkdir(parents=True)
    if embedded._run_as() is not None:
        embedded._prepare_for_service_user(data_dir)
    copied = embedded._run([str(embedded._bin("pg_basebackup")), "-D", str(data_dir), "-h", "127.0.0.1",
                            "-p", str(primary.port), "-U", embedded.SUPERUSER, "-X", "stream",
                            "-c", "fast"], timeout=120)
    assert copied.returncode == 0, copied.stderr
    data_dir.chmod(0o700)  # as initdb leaves it: the server refuses a wider one
    return embedded.start(data_dir, durable=False)  # on a port of its own: the primary's is taken
