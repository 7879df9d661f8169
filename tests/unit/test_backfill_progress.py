"""The backfill command's progress bar: what an operator watches during a long run."""

from __future__ import annotations

import io

from prometheus_client import CollectorRegistry
from rich.console import Console

from indexer.backfill import WalletProgress
from indexer.commands.backfill import _overall_label, _progress_bar, _Tally
from indexer.metrics import Metrics


def test_the_bar_shows_scanned_committed_rate_share_and_eta_columns() -> None:
    console = Console(record=True, width=200, file=io.StringIO())
    with _progress_bar(True, console) as bar:
        wallet = bar.add_task("AgentW1…", total=None, scanned=1000, committed=0)
        bar.update(wallet, scanned=2000, committed=1500, total=1.0, completed=0.5)
        overall = bar.add_task(_overall_label(0, 2), total=2, scanned=2000, committed=1500)
        bar.update(overall, completed=0.5)
        console.print(bar.get_renderable())
    lines = [line for line in console.export_text().splitlines() if line.strip()]
    wallet_line = next(line for line in lines if line.startswith("AgentW1"))
    overall_line = next(line for line in lines if line.startswith("all wallets (0/2 finished)"))
    for expected in ("50%", "2,000 scanned", "1,500 committed", "tx/s"):
        assert expected in wallet_line
    assert "25%" in overall_line  # half of one of two wallets


def test_a_wallet_of_unknown_length_has_no_share() -> None:
    console = Console(record=True, width=200, file=io.StringIO())
    with _progress_bar(True, console) as bar:
        bar.add_task("AgentW1…", total=None, scanned=0, committed=0)
        console.print(bar.get_renderable())
    line = next(line for line in console.export_text().splitlines() if line.startswith("AgentW1"))
    assert "%" not in line
    assert "0 committed" in line


def test_the_tally_feeds_the_backfill_metrics() -> None:
    registry = CollectorRegistry()
    with _progress_bar(False) as bar:
        tally = _Tally(2, bar, Metrics(registry))
        tally.page("A", WalletProgress("A", scanned=1000, submitted=400))
        tally.page("A", WalletProgress("A", scanned=1500, submitted=900))  # totals, not deltas
        tally.page("B", WalletProgress("B", scanned=10, submitted=10, done=True, share=1.0))
        tally.finish("B")
        overall = bar.tasks[0]
    def value(name: str) -> float | None:
        return registry.get_sample_value(f"amoca_indexer_{name}")
    assert value("backfill_signatures_total") == 1510
    assert value("backfill_transactions_total") == 910
    assert value("backfill_wallets_remaining") == 1
    assert overall.description == "all wallets (1/2 finished)"
    assert overall.completed == 1.0  # B finished; A's share of its range is unknown
