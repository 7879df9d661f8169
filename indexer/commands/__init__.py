"""One module per `amoca-indexer` subcommand; each exposes a click command named `command`.

Shared option helpers live here so every command spells the same flag the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from indexer.config import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def database_option(func: F) -> F:
    """`--database-url`, overriding AMOCA_DATABASE_URL and config/*.toml."""
    return click.option(
        "--database-url", metavar="URL", default=None,
        help="libpq URL (default: AMOCA_DATABASE_URL, else the embedded PostgreSQL).",
    )(func)


def settings(**overrides: Any) -> Settings:
    """Settings from config/*.toml and AMOCA_*, with the command's flags on top."""
    return load_settings(overrides=overrides)
