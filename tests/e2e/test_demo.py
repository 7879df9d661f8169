"""`amoca-indexer demo`, the README's main command, as a real process: it brings up the
local cluster, the workload and the daemon, the database reaches the workload's ground
truth, and Ctrl-C stops everything cleanly with the final view on screen."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import orjson

from tests.e2e.harness import database_rows, differences, eventually, expected_rows


def demo_args(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "indexer", "demo", "--count", "40", "--rate", "40",
            "--agents", "3", "--users", "5", "--metrics-port", "0", "--slot-ms", "40",
            "--finality-slots", "6", "--truth", str(tmp_path / "truth.jsonl"), *extra]


def demo_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "AMOCA_DATABASE_URL": db_url, "AMOCA_DATA_DIR": str(tmp_path / "data")}


async def test_demo_reaches_the_ground_truth_and_stops_on_ctrl_c(db_url: str, tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *demo_args(tmp_path, "--port", "0"), env=demo_env(db_url, tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    truth = tmp_path / "truth.jsonl"
    try:
        await eventually(lambda: [] if truth.exists() else ["workload still running"], deadline=60,
                         what="the demo's workload finished")
        expected = expected_rows(orjson.loads(line) for line in truth.read_bytes().splitlines())
        assert expected
        await eventually(lambda: differences(expected, database_rows(db_url)), deadline=60,
                         what="the demo's database equal to its ground truth")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr.decode()[-2000:]
    screen = stdout.decode()
    # The last view stays on screen: it was rendered after Ctrl-C, when every row matched.
    assert f"{len(expected)}/{len(expected)} expected rows match -- all equal" in screen, screen[-2000:]
    assert "transactions indexed" in screen
    assert b"Traceback" not in stderr
    # Logs went to the file the view names, not across the live view.
    log = (tmp_path / "data" / "demo.log").read_text()
    assert '"event": "daemon_stopped"' in log


async def test_a_busy_port_is_one_clear_line(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            *demo_args(tmp_path, "--port", str(port)), env=demo_env(db_url, tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 2
    assert len(lines) == 1, lines
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
