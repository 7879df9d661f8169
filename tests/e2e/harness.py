"""End-to-end harness: the daemon as a real process against the localnet and PostgreSQL,
and the comparison of the database with the workload's ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from decimal import Decimal
from typing import Any

import psycopg

_ROWS = """
SELECT t.transaction_signature, a.wallet_address, u.wallet_address, t.transaction_type, t.status,
       t.amount, t.mint, t.task_id::text, t.refund_of
FROM transactions t JOIN agents a ON a.id = t.agent_id LEFT JOIN users u ON u.id = t.user_id
"""


def expected_rows(truth: Iterable[dict[str, Any]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {(r["signature"], r["agent_wallet"]): (
        r["counterparty_wallet"], r["transaction_type"], r["status"], Decimal(r["amount"]), r["mint"],
        r["task_id"], r["refund_of"]) for r in truth}


def database_rows(url: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return {(sig, agent): (user, type_, status, amount, mint, task, refund_of)
                for sig, agent, user, type_, status, amount, mint, task, refund_of
                in conn.execute(_ROWS).fetchall()}


def differences(expected: dict[Any, Any], actual: dict[Any, Any]) -> list[str]:
    problems = [f"missing {k}: {v}" for k, v in expected.items() if k not in actual]
    problems += [f"unexpected {k}: {v}" for k, v in actual.items() if k not in expected]
    problems += [f"differs {k}: want {v}, have {actual[k]}" for k, v in expected.items()
                 if k in actual and actual[k] != v]
    return problems


def stats_consistent(url: str) -> bool:
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT agent_id, total_earnings FROM agent_stats ORDER BY 1").fetchall()
        reference = conn.execute("SELECT agent_id, total_earnings FROM expected_agent_stats()"
                                 " ORDER BY 1").fetchall()
    return stored == reference


async def eventually(check: Callable[[], list[str]], *, deadline: float, what: str) -> None:
    """Re-check (every 200 ms) until ``check`` reports no problem or ``deadline`` s pass."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    problems = check()
    while problems:
        if loop.time() > end:
            raise AssertionError(f"{what} not reached in {deadline} s; {len(problems)} problems:\n"
                                 + "\n".join(problems[:15]))
        await asyncio.sleep(0.2)
        problems = await asyncio.to_thread(check)


class DaemonProcess:
    """`python -m indexer run` in a subprocess, its log kept for failure reports."""

    def __init__(self, database_url: str, http_url: str, ws_url: str, **env: str) -> None:
        self.args = [sys.executable, "-m", "indexer", "--log-json", "run", "--database-url",
                     database_url, "--rpc-url", http_url, "--ws-url", ws_url, "--metrics-port", "0"]
        self.env = {**os.environ, "AMOCA_RECONCILE_INTERVAL": "3", "AMOCA_FINALITY_INTERVAL": "0.3",
                    "AMOCA_RANKINGS_INTERVAL": "5", **env}
        self.process: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, env=self.env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.log.append(line.decode(errors="replace").rstrip())

    def logged(self, event: str) -> bool:
        return any(f'"event": "{event}"' in line or f'"event":"{event}"' in line for line in self.log)

    async def wait_logged(self, event: str, deadline: float = 30.0) -> None:
        await eventually(lambda: [] if self.logged(event) else [f"no {event} yet"],
                         deadline=deadline, what=f"daemon log event {event}")

    async def stop(self, sig: int = signal.SIGTERM, deadline: float = 15.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), deadline)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log[-lines:])


@contextlib.asynccontextmanager
async def running_daemon(database_url: str, http_url: str, ws_url: str,
                         **env: str) -> AsyncIterator[DaemonProcess]:
    daemon = DaemonProcess(database_url, http_url, ws_url, **env)
    await daemon.start()
    try:
        yield daemon
    finally:
        if daemon.process is not None and daemon.process.returncode is None:
            await daemon.stop(signal.SIGKILL)
