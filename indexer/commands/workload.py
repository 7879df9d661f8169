"""`amoca-indexer workload`: send AMOCA traffic to a cluster and write the ground truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson

from indexer.localnet.workload_plan import DEFAULT_MIX, KINDS


def _mix(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, int]:
    """``kind=weight,...``; kinds left out weigh 0. Empty: the default mix."""
    if not value:
        return dict(DEFAULT_MIX)
    mix: dict[str, int] = {}
    for part in value.split(","):
        name, _, weight = part.partition("=")
        name, weight = name.strip(), weight.strip()
        if name not in KINDS or not weight.isdigit():
            raise click.BadParameter(f"{part!r}: use kind=weight with kinds {', '.join(KINDS)}", ctx, param)
        mix[name] = int(weight)
    if not any(mix.values()):
        raise click.BadParameter("every weight is 0", ctx, param)
    return mix


def _first_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """AMOCA_RPC_URL may list fail-over endpoints; the workload sends to the first."""
    return value.split(",", maxsplit=1)[0].strip()


@click.command("workload")
@click.option("--rpc-url", default="http://127.0.0.1:8899", show_default=True, envvar="AMOCA_RPC_URL",
              callback=_first_url, help="HTTP JSON-RPC endpoint (default: the localnet).")
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(0.1, 100_000),
              help="Transactions per second.")
@click.option("--count", default=200, show_default=True, type=click.IntRange(1),
              help="Transactions to send (ignored with --duration).")
@click.option("--duration", type=click.FloatRange(0.1), default=None,
              help="Seconds to send for: rate x duration transactions.")
@click.option("--seed", default=1, show_default=True, help="Fixes wallets, tasks, mix and amounts.")
@click.option("--agents", default=10, show_default=True, type=click.IntRange(1))
@click.option("--users", default=20, show_default=True, type=click.IntRange(1))
@click.option("--mix", callback=_mix, default=None,
              help=f"kind=weight,... (default: every kind). Kinds: {', '.join(KINDS)}.")
@click.option("--usdc/--no-usdc", default=True, show_default=True, help="Create the 6-decimal mint.")
@click.option("--alt/--no-alt", default=True, show_default=True,
              help="Create an address lookup table of the agents for v0 transfers.")
@click.option("--commitment", type=click.Choice(["confirmed", "finalized"]), default="confirmed",
              show_default=True, help="What each transaction is awaited to.")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=Path("truth.jsonl"),
              show_default=True, help="Where to write the expected rows (JSON lines; summary beside it).")
@click.option("--database-url", default=None, envvar="AMOCA_DATABASE_URL",
              help="Register users, agents and tasks there before the traffic.")
def command(rpc_url: str, rate: float, count: int, duration: float | None, seed: int, agents: int,
            users: int, mix: dict[str, int], usdc: bool, alt: bool, commitment: str, truth: Path,
            database_url: str | None) -> None:
    """Send marketplace transfers and write the rows the database should end up holding."""
    from indexer.localnet.workload import WorkloadConfig, run_workload

    config = WorkloadConfig(
        rpc_url=rpc_url, rate=rate, count=count, duration=duration, seed=seed, agents=agents, users=users,
        mix=mix, usdc=usdc, alt=alt, truth_path=truth, database_url=database_url,
        commitment="finalized" if commitment == "finalized" else "confirmed")
    try:
        summary = asyncio.run(run_workload(config))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(orjson.dumps({"sent": summary.sent, "rows": summary.rows, "by_kind": dict(summary.by_kind),
                             "by_type_status": dict(summary.by_type_status), "truth": summary.truth_path,
                             "summary": summary.summary_path}, option=orjson.OPT_INDENT_2).decode())
