"""End-to-end harness: the daemon as a real process against the localnet and PostgreSQL,
and the comparison of the database with the workload's ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import aiohttp
import psycopg
from prometheus_client.parser import text_string_to_metric_families

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


_STAT_COLUMNS = ("tasks_completed, tasks_failed, success_rate, avg_response_time_minutes,"
                 " total_earnings, rating, review_count, avg_rating, hire_count")


def stats_differences(url: str) -> list[str]:
    """Every trigger-maintained stat (each agent_stats column, users.total_spent) against the
    SQL reference recomputation from the base tables (sql/0002_stats.sql)."""
    with psycopg.connect(url) as conn:
        stored = {r[0]: r[1:] for r in conn.execute(
            f"SELECT agent_id, {_STAT_COLUMNS} FROM agent_stats").fetchall()}
        reference = {r[0]: r[1:] for r in conn.execute(
            f"SELECT agent_id, {_STAT_COLUMNS} FROM expected_agent_stats()").fetchall()}
        spent: dict[Any, Any] = dict(conn.execute("SELECT id, total_spent FROM users").fetchall())
        spent_reference: dict[Any, Any] = dict(conn.execute(
            "SELECT user_id, total_spent FROM expected_user_totals()").fetchall())
    return [f"agent_stats {k}" for k in differences(reference, stored)] + \
        [f"users.total_spent {k}" for k in differences(spent_reference, spent)]


def stats_consistent(url: str) -> bool:
    return not stats_differences(url)


def _earning(row: dict[str, Any]) -> Decimal:
    """What a truth row adds to its agent's earnings and its user's spending (SOL only),
    as sql/0002_stats.sql's transaction_earning() defines it."""
    if row["mint"] is not None:
        return Decimal(0)
    if row["transaction_type"] in ("funding", "payment", "subscription") and \
            row["status"] in ("confirmed", "refunded"):
        return Decimal(row["amount"])
    if row["transaction_type"] == "refund" and row["status"] == "confirmed":
        return -Decimal(row["amount"])
    return Decimal(0)


def expected_totals(truth: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Decimal]:
    """("agent" | "user", wallet) -> total_earnings | total_spent, from the truth alone."""
    totals: dict[tuple[str, str], Decimal] = {}
    for row in truth:
        earning = _earning(row)
        for key in (("agent", row["agent_wallet"]), ("user", row["counterparty_wallet"])):
            totals[key] = totals.get(key, Decimal(0)) + earning
    return totals


def total_differences(url: str, truth: Iterable[dict[str, Any]]) -> list[str]:
    """The stored totals of every agent and user against the truth (absent from it: zero)."""
    expected = expected_totals(truth)
    with psycopg.connect(url) as conn:
        actual = {("agent", w): v for w, v in conn.execute(
            "SELECT a.wallet_address, s.total_earnings FROM agents a"
            " JOIN agent_stats s ON s.agent_id = a.id").fetchall()}
        actual |= {("user", w): v for w, v in conn.execute(
            "SELECT wallet_address, total_spent FROM users").fetchall()}
    expected = {k: expected.get(k, Decimal(0)) for k in actual} | expected
    return differences(expected, actual)


def truth_differences(url: str, truth: Iterable[dict[str, Any]]) -> list[str]:
    """Every row, status and stat of the database against the truth; [] when equal."""
    truth = list(truth)
    problems = differences(expected_rows(truth), database_rows(url))
    return problems or total_differences(url, truth) + stats_differences(url)


def dead_letters(url: str) -> list[tuple[str, str, str | None]]:
    """(stage, reason, signature) of every dead letter: a fault must not produce any."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT stage, reason, signature FROM dead_letters ORDER BY id").fetchall()


def after_fork(truth: Iterable[dict[str, Any]], dropped: Iterable[str]) -> list[dict[str, Any]]:
    """The truth once a fork dropped ``dropped`` (signatures) before they were finalized:
    their rows end ``failed`` (DESIGN section 5: dropped), and a payment whose refund was
    dropped is no longer refunded."""
    gone = set(dropped)
    rows = [dict(r) for r in truth]
    unrefunded = {r["refund_of"] for r in rows if r["signature"] in gone and r["refund_of"]}
    for row in rows:
        if row["signature"] in gone:
            row["status"] = "failed"
        elif row["signature"] in unrefunded and row["status"] == "refunded":
            row["status"] = "confirmed"
    return rows


def metric_samples(text: str) -> dict[str, float]:
    """A /metrics page: sample name (labels summed away) -> value."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


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


async def eventually_async(check: Callable[[], Awaitable[list[str]]], *, deadline: float,
                           what: str) -> None:
    """`eventually` for a check that awaits (an HTTP request): re-check every 200 ms."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while problems := await check():
        if loop.time() > end:
            raise AssertionError(f"{what} not reached in {deadline} s:\n" + "\n".join(problems))
        await asyncio.sleep(0.2)


def row_count(url: str) -> int:
    """Rows in ``transactions``."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM transactions").fetchone()
    return int(row[0]) if row else 0


async def fault(admin_url: str, action: str, **body: Any) -> Any:
    """Inject a localnet fault through its admin interface; returns the admin's result."""
    async with aiohttp.ClientSession() as session, \
            session.post(f"{admin_url}/{action}", json=body) as response:
        answer = await response.json()
    assert response.status == 200, f"admin {action} {body} answered {response.status}: {answer}"
    return answer["result"]


async def eventually_reaches(read: Callable[[], Awaitable[float]], target: float, *,
                             deadline: float, what: str) -> None:
    """Re-read (every 200 ms) until the number ``read()`` reaches ``target``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while (value := await read()) < target:
        if loop.time() > end:
            raise AssertionError(f"{what}: {value} after {deadline} s, wanted {target}")
        await asyncio.sleep(0.2)


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
        def check() -> list[str]:
            if self.logged(event):
                return []
            code = self.process.returncode if self.process is not None else None
            return [f"no {event} yet (exit code {code}); daemon log:\n{self.tail(20)}"]
        await eventually(check, deadline=deadline, what=f"daemon log event {event}")

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

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log records of ``event``, oldest first."""
        found = []
        for line in self.log:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
        return found

    @property
    def ops_port(self) -> int:
        """The port of /metrics, /healthz and /readyz, from the daemon's ops_listening log."""
        listening = self.events("ops_listening")
        assert listening, f"no ops_listening line in the daemon log:\n{self.tail()}"
        return int(listening[-1]["port"])

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The daemon's /metrics, scraped: (sample name, sorted labels) -> value."""
        url = f"http://127.0.0.1:{self.ops_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    async def metric_total(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(value for (sample, sample_labels), value in (await self.metrics()).items()
                   if sample == name and set(labels.items()) <= set(sample_labels))


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
