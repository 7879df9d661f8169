"""`amoca-indexer workload`: send AMOCA traffic to a cluster and write the ground truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson

from indexer.localnet.workload import DEFAULT_MIX, WorkloadConfig, run_workload


def _mix(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, int]:
    if not value:
        return dict(DEFAULT_MIX)
    mix: dict[str, int] = {}
    for part in value.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in DEFAULT_MIX or not weight.strip().isdigit():
            raise click.BadParameter(
                f"{part!r}: use kind=weight with kinds {', '.join(DEFAULT_MIX)}", ctx, param)
        mix[name.strip()] = int(weight)
    return mix


@click.command("workload")
@click.option("--rpc-url", default="http://127.0.0.1:8899", show_default=True)
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(0.1, 100_000))
@click.option("--count", default=200, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True)
@click.option("--agents", default=10, show_default=True, type=click.IntRange(1))
@click.option("--users", default=20, show_default=True, type=click.IntRange(1))
@click.option("--mix", callback=_mix, default=None, help="kind=weight,... (default: every kind).")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=Path("truth.jsonl"),
              show_default=True, help="Where to write the expected rows (JSON lines).")
@click.option("--database-url", default=None, help="Register users, agents and tasks there.")
def command(rpc_url: str, rate: float, count: int, seed: int, agents: int, users: int,
            mix: dict[str, int], truth: Path, database_url: str | None) -> None:
    """Send marketplace transfers and write the rows the database should end up holding."""
    summary = asyncio.run(run_workload(WorkloadConfig(
        rpc_url=rpc_url, rate=rate, count=count, seed=seed, agents=agents, users=users, mix=mix,
        truth_path=truth, database_url=database_url)))
    click.echo(orjson.dumps({"sent": summary.sent, "rows": summary.rows, "by_kind": summary.by_kind,
                             "by_type_status": summary.by_type_status, "truth": summary.truth_path},
                            option=orjson.OPT_INDENT_2).decode())
