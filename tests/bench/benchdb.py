"""What benchmarks share: a PostgreSQL server (AMOCA_BENCH_DATABASE_URL, or a throwaway
embedded one) and a local cluster in its own process, so its CPU is not counted as ours."""

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

from indexer.db import embedded


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
        await wait_healthy(http_url)
        yield http_url, f"ws://127.0.0.1:{port + 1}"
    finally:
        cluster.terminate()
        await asyncio.wait_for(cluster.wait(), 30)
