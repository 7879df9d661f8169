"""What benchmarks share: a PostgreSQL server (AMOCA_BENCH_DATABASE_URL, or a throwaway
embedded one), a local cluster in its own process, so its CPU is not counted as ours, and
the CPU time of those other processes (Linux /proc), so a figure says what limits it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import psycopg
from psycopg import conninfo, sql

from indexer.db import embedded

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_cluster_pids: dict[str, int] = {}


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process; 0.0 when unknown (not Linux, gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else 0.0


def stolen_cpu() -> float:
    """CPU seconds the hypervisor gave to other guests, all CPUs together (Linux
    /proc/stat's steal column; 0.0 elsewhere): one cause of a virtual machine's slow
    spells, printed beside the runs. Not the only one: a neighbour's load on shared caches
    or the host's clock speed slow every instruction without any CPU being stolen (seen:
    the same runs needing twice the CPU per transaction with 0% stolen)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    return int(fields[8]) / _TICKS if len(fields) > 8 else 0.0


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, of its children that exited (reaped) and of those alive."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / _TICKS
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = _stat(int(entry.name))
            if child and int(child[1]) == pid:
                total += (int(child[11]) + int(child[12])) / _TICKS
    return total


def postgres_pid(url: str) -> int:
    """The postmaster of the server at ``url`` when it runs on this machine, else 0."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        fields = _stat(int(row[0])) if row else None  # while the backend lives
    return int(fields[1]) if fields else 0


def cluster_pid(http_url: str) -> int:
    """The process of a cluster started by ``separate_cluster`` (0 when unknown)."""
    return _cluster_pids.get(http_url, 0)


@contextmanager
def postgres() -> Iterator[str]:
    """A superuser URL, valid inside the ``with`` block."""
    external = os.environ.get("AMOCA_BENCH_DATABASE_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "pg"
        server = embedded.start(data, durable=False)
        try:
            yield server.url()
        finally:
            embedded.stop(data, mode="immediate")


def create_database(admin: str, name: str, template: str | None = None) -> str:
    """A database on the server of ``admin`` (a copy of ``template``); returns its URL.

    A CHECKPOINT follows, so the copy's writes land now, not inside a measured run. Then
    one connection: a new database's first backend builds its relation-cache init file
    (that connection takes 10-12 ms here, the next ones 4), which a database in use has
    long had."""
    with psycopg.connect(admin, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(query)
        conn.execute("CHECKPOINT")
    url = conninfo.make_conninfo(admin, dbname=name)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1")
    return url


def drop_database(admin: str, name: str) -> None:
    """Gone once measured: nothing stays on a server of yours (AMOCA_BENCH_DATABASE_URL),
    and autovacuum on an earlier run's rows does not run inside the next."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def free_port_pair() -> int:
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise OSError("no free pair of ports")


async def wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            try:
                async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


@asynccontextmanager
async def separate_cluster(slot_ms: int = 40, finality_slots: int = 6) -> AsyncIterator[tuple[str, str]]:
    """`amoca-indexer localnet` as a child process; yields (http_url, ws_url)."""
    port = free_port_pair()
    cluster = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "indexer", "--log-level", "warning", "localnet", "--port", str(port),
        "--slot-ms", str(slot_ms), "--finality-slots", str(finality_slots), stdout=subprocess.DEVNULL)
    try:
        http_url = f"http://127.0.0.1:{port}"
        _cluster_pids[http_url] = cluster.pid
        await wait_healthy(http_url)
        yield http_url, f"ws://127.0.0.1:{port + 1}"
    finally:
        _cluster_pids.pop(f"http://127.0.0.1:{port}", None)
        cluster.terminate()
        await asyncio.wait_for(cluster.wait(), 30)
