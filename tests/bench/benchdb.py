"""A PostgreSQL server for benchmarks: AMOCA_BENCH_DATABASE_URL, or a throwaway embedded one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
