"""Log lines: structlog's and libraries' stdlib records alike are one JSON object per line,
and `logs_to` sends them to a file while a command owns the terminal."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog

from indexer.logs import configure_logging, logs_to


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_structlog_and_stdlib_records_are_json_lines_in_the_file(tmp_path: Path) -> None:
    configure_logging("info", json=None)  # JSON chosen because the target is not a terminal
    path = tmp_path / "run.log"
    with logs_to(path):
        structlog.get_logger("indexer.test").info("row_written", signature="abc", rows=2)
        logging.getLogger("psycopg.pool").warning("error connecting in %r: %s", "pool-1", "refused")
        logging.getLogger("aiohttp.access").info("below the stdlib threshold: not written")
    lines = [orjson.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["row_written", "error connecting in 'pool-1': refused"]
    assert lines[0]["rows"] == 2
    assert lines[0]["level"] == "info"
    assert lines[1]["logger"] == "psycopg.pool"
    assert lines[1]["level"] == "warning"
    assert all("timestamp" in line for line in lines)
