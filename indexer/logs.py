"""Logging, configured once by the CLI: structlog JSON lines, pretty on a terminal.

Log lines go to a switchable stream (stderr unless a command redirects it, as `demo`
does while its live view owns the terminal). The renderer is chosen per line from
where the line goes: pretty on a terminal, JSON anywhere else (a file, a pipe).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog


class _LogStream:
    """A file-like object whose target can be switched after loggers have been cached."""

    def __init__(self) -> None:
        self.target: TextIO | None = None  # None: the process's current sys.stderr

    @property
    def current(self) -> TextIO:
        return self.target if self.target is not None else sys.stderr

    def write(self, text: str) -> int:
        return self.current.write(text)

    def flush(self) -> None:
        self.current.flush()

    def isatty(self) -> bool:
        return self.current.isatty()


_STREAM = _LogStream()


class _Renderer:
    def __init__(self, json: bool | None) -> None:
        self.json = json
        self._json = structlog.processors.JSONRenderer()
        self._pretty = structlog.dev.ConsoleRenderer()

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        use_json = (not _STREAM.isatty()) if self.json is None else self.json
        return str((self._json if use_json else self._pretty)(logger, name, event))


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Route structlog (and stdlib logging) to stderr; JSON unless that is a terminal."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer = _Renderer(json)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # _LogStream is a TextIO in all that PrintLogger uses (write, flush).
        logger_factory=structlog.PrintLoggerFactory(file=_STREAM),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Libraries' stdlib log records (psycopg's pool, aiohttp) get the same rendering, so a
    # JSON log stays one JSON object per line.
    handler = logging.StreamHandler(_STREAM)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


@contextlib.contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """Send log lines (as JSON) to ``path`` until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        previous, _STREAM.target = _STREAM.target, file
        try:
            yield
        finally:
            _STREAM.target = previous
