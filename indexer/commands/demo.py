"""`amoca-indexer demo`: the whole system on one machine, with a live summary.

Embedded PostgreSQL (migrated) + the local cluster + the AMOCA workload (which registers
its agents, users and tasks in the database) + the daemon, all in this process. The
terminal shows, once a second: rows indexed by type and status, the slot lag, the top
agents by earnings, and the metrics URL. Ctrl-C stops everything in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path
from typing import Any

import click
import psycopg

from indexer.commands import settings
from indexer.commands.run import ensure_schema
from indexer.db.connection import database_url as resolve_database_url

_BY_TYPE = """
SELECT transaction_type, status, count(*), coalesce(sum(amount) FILTER (WHERE mint IS NULL), 0)
FROM transactions GROUP BY 1, 2 ORDER BY 1, 2
"""
_TOP_AGENTS = """
SELECT a.name, s.total_earnings, s.tasks_completed, s.hire_count
FROM agent_stats s JOIN agents a ON a.id = s.agent_id
ORDER BY s.total_earnings DESC, a.name LIMIT 5
"""


def _render(snapshot: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table

    rows = Table(title="transactions indexed", expand=False)
    for column in ("type", "status", "rows", "SOL"):
        rows.add_column(column, justify="right" if column in ("rows", "SOL") else "left")
    for type_, status, count, sol in snapshot["by_type"]:
        rows.add_row(type_, status, str(count), f"{sol:.4f}")
    agents = Table(title="top agents by earnings (SOL, confirmed)")
    for column in ("agent", "earnings", "tasks done", "hires"):
        agents.add_column(column)
    for name, earnings, done, hires in snapshot["top"]:
        agents.add_row(name, f"{earnings:.4f}", str(done), str(hires))
    status = Table.grid(padding=(0, 2))
    for key, value in snapshot["status"].items():
        status.add_row(key, str(value))
    return Group(status, rows, agents)


_MATCHING = """
SELECT count(*) FROM transactions t JOIN agents a ON a.id = t.agent_id
JOIN jsonb_to_recordset(%s::jsonb) AS truth(signature text, agent_wallet text, transaction_type text,
                                           status text, amount numeric)
  ON truth.signature = t.transaction_signature AND truth.agent_wallet = a.wallet_address
 AND truth.transaction_type = t.transaction_type AND truth.status = t.status
 AND truth.amount = t.amount
"""


async def _snapshot(url: str, daemon: Any, workload: dict[str, Any], truth: Path,
                    log_path: Path) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        by_type = await (await conn.execute(_BY_TYPE)).fetchall()
        top = await (await conn.execute(_TOP_AGENTS)).fetchall()
        verdict = "workload still running"
        if workload.get("done"):
            rows = workload.setdefault("truth_rows", (await asyncio.to_thread(truth.read_bytes)).splitlines())
            payload = "[" + ",".join(r.decode() for r in rows) + "]"
            row = await (await conn.execute(_MATCHING, (payload,))).fetchone()
            matched = int(row[0]) if row else 0
            verdict = f"{matched}/{len(rows)} expected rows match" + (
                " (waiting for finality)" if matched < len(rows) else " -- all equal")
    return {
        "by_type": by_type,
        "top": top,
        "status": {
            "metrics": f"http://127.0.0.1:{daemon.ops_port}/metrics" if daemon.ops_port else "starting",
            "slot lag": getattr(daemon, "slot_lag", "n/a"),
            "watched wallets": len(daemon.subs.wallets) if hasattr(daemon, "subs") else 0,
            "workload": workload.get("state", "starting"),
            "ground truth": verdict,
            "log": str(log_path),
        },
    }


async def _demo(rate: float, count: int, agents: int, users: int, port: int,
                metrics_port: int, truth: Path, slot_ms: int, finality_slots: int) -> None:
    from rich.live import Live

    from indexer.daemon import Daemon
    from indexer.localnet import Localnet, LocalnetConfig
    from indexer.localnet.workload import WorkloadConfig, run_workload
    from indexer.logs import logs_to

    config = settings()
    log_path = Path(config.data_dir) / "demo.log"
    url = resolve_database_url(config)
    ensure_schema(url, config, migrate=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Localnet(LocalnetConfig(port=port, slot_ms=slot_ms, finality_slots=finality_slots)) as net:
        daemon_settings = dataclasses.replace(
            config, rpc_urls=(net.http_url,), ws_url=net.ws_url, metrics_port=metrics_port,
            rankings_interval=10.0, reconcile_interval=30.0)
        daemon = Daemon(daemon_settings, url, handle_signals=False)
        daemon_task = asyncio.create_task(daemon.run())
        workload_state: dict[str, Any] = {"state": "running"}

        async def workload() -> None:
            summary = await run_workload(WorkloadConfig(
                rpc_url=net.http_url, rate=rate, count=count, agents=agents, users=users,
                truth_path=truth, database_url=url))
            workload_state["state"] = f"done: {summary}"
            workload_state["done"] = True

        workload_task = asyncio.create_task(workload())
        click.echo(f"localnet: {net.http_url}  websocket: {net.ws_url}")
        click.echo(f"ground truth: {truth}   log: {log_path}   Ctrl-C to stop")
        # The live view owns the terminal; log lines would tear it, so they go to a file
        # until everything has stopped.
        with logs_to(log_path):
            try:
                with Live(refresh_per_second=2) as live:
                    while True:
                        if (workload_task.done() and not workload_task.cancelled()
                                and workload_task.exception()):
                            workload_state["state"] = f"failed: {workload_task.exception()}"
                        if daemon_task.done():
                            stop.set()  # the daemon ended on its own: its reason is in the log
                        with contextlib.suppress(psycopg.Error):
                            live.update(_render(await _snapshot(url, daemon, workload_state, truth,
                                                                log_path)))
                        if stop.is_set():
                            break  # the last view rendered is the state at Ctrl-C; it stays on screen
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(1.0):
                                await stop.wait()
            finally:
                workload_task.cancel()
                daemon.stopping.set()
                await asyncio.gather(workload_task, daemon_task, return_exceptions=True)
        click.echo(f"demo stopped; the daemon's log is in {log_path}")


@click.command("demo")
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(0.1, 100_000),
              help="Workload transactions per second.")
@click.option("--count", default=2000, show_default=True, type=click.IntRange(1),
              help="Workload transactions in all.")
@click.option("--agents", default=20, show_default=True, type=click.IntRange(1))
@click.option("--users", default=50, show_default=True, type=click.IntRange(1))
@click.option("--port", default=8899, show_default=True, type=click.IntRange(0, 65534),
              help="Localnet HTTP port (websocket: +1; 0 picks free ports).")
@click.option("--metrics-port", default=9108, show_default=True, type=click.IntRange(0, 65535))
@click.option("--slot-ms", default=400, show_default=True, type=click.IntRange(5, 60_000),
              help="Localnet slot time.")
@click.option("--finality-slots", default=32, show_default=True, type=click.IntRange(1, 1000),
              help="Slots from confirmed to finalized on the localnet.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(".amoca/demo-truth.jsonl"), show_default=True)
def command(rate: float, count: int, agents: int, users: int, port: int, metrics_port: int,
            slot_ms: int, finality_slots: int, truth: Path) -> None:
    """Embedded PostgreSQL + localnet + AMOCA workload + daemon, with a live summary."""
    truth.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(_demo(rate, count, agents, users, port, metrics_port, truth, slot_ms, finality_slots))
