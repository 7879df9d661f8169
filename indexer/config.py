"""Settings: `config/*.toml`, overridden by `AMOCA_*` environment variables, then flags.

No setting is needed for the embedded defaults. The environment names in ``ENV_NAMES``
are a fixed contract (DESIGN section 8): operators and outside tests rely on them.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from indexer.errors import ConfigError

COMMITMENTS = ("processed", "confirmed", "finalized")
DEFAULT_RPC_URL = "http://127.0.0.1:8899"

ENV_NAMES: Mapping[str, str] = {
    "database_url": "AMOCA_DATABASE_URL",
    "rpc_urls": "AMOCA_RPC_URL",
    "ws_url": "AMOCA_WS_URL",
    "commitment": "AMOCA_COMMITMENT",
    "metrics_port": "AMOCA_METRICS_PORT",
    "data_dir": "AMOCA_DATA_DIR",
    "shard": "AMOCA_SHARD",
    "max_subscriptions_per_connection": "AMOCA_MAX_SUBSCRIPTIONS_PER_CONNECTION",
    "reconcile_interval": "AMOCA_RECONCILE_INTERVAL",
    "finality_interval": "AMOCA_FINALITY_INTERVAL",
    "rankings_interval": "AMOCA_RANKINGS_INTERVAL",
    "rankings_quiet": "AMOCA_RANKINGS_QUIET",
    "rankings_max_delay": "AMOCA_RANKINGS_MAX_DELAY",
    "rankings_max_share": "AMOCA_RANKINGS_MAX_SHARE",
    "retention_interval": "AMOCA_RETENTION_INTERVAL",
    "rpc_requests_per_second": "AMOCA_RPC_REQUESTS_PER_SECOND",
    "writer_synchronous_commit": "AMOCA_WRITER_SYNCHRONOUS_COMMIT",
}
_INT_FIELDS = frozenset({"max_subscriptions_per_connection", "gapfill_concurrency", "fetch_workers",
                         "rpc_max_concurrency", "readiness_max_slot_lag"})
_FLOAT_FIELDS = frozenset({"subscribe_rate", "reconcile_interval", "finality_interval",
                           "rankings_interval", "rankings_quiet", "rankings_max_delay",
                           "rankings_max_share", "retention_interval", "rpc_requests_per_second",
                           "shutdown_timeout"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the indexer can be told. Unset database_url = embedded PostgreSQL."""

    database_url: str | None = None
    rpc_urls: tuple[str, ...] = (DEFAULT_RPC_URL,)
    ws_url: str | None = None
    commitment: str = "confirmed"
    metrics_port: int = 9108
    data_dir: Path = field(default_factory=lambda: Path(".amoca"))
    # Daemon tuning (config/*.toml or AMOCA_<NAME> in upper case).
    shard: str = "0/1"
    max_subscriptions_per_connection: int = 1000
    subscribe_rate: float = 500.0
    reconcile_interval: float = 60.0
    finality_interval: float = 2.0
    rankings_interval: float = 60.0
    # Soon after stats change: once signals have been quiet this long, at most this long
    # after the first one, and using at most this share of one database backend.
    rankings_quiet: float = 2.0
    rankings_max_delay: float = 30.0
    rankings_max_share: float = 0.1
    retention_interval: float = 86_400.0  # seconds between scheduled prunes
    gapfill_concurrency: int = 8
    fetch_workers: int = 4
    rpc_max_concurrency: int = 16
    rpc_requests_per_second: float = 0.0  # 0 = unlimited
    readiness_max_slot_lag: int = 150
    shutdown_timeout: float = 8.0
    # The writer's sessions' synchronous_commit (on / off, as PostgreSQL writes it): off
    # commits without waiting for the WAL flush (README, "Asynchronous commit"); the rest
    # of the indexer's sessions stay on.
    writer_synchronous_commit: bool = True

    @property
    def effective_ws_url(self) -> str:
        """The PubSub URL: explicit, or derived from the first RPC URL as Solana clients do."""
        return self.ws_url or derive_ws_url(self.rpc_urls[0])


def derive_ws_url(rpc_url: str) -> str:
    """http→ws, https→wss; an explicit port moves to port + 1 (solana-test-validator's rule)."""
    parts = urlsplit(rpc_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ConfigError(f"RPC URL must be http or https, got {redact_url(rpc_url)}")
    netloc = parts.netloc
    if parts.port is not None:
        host = netloc.rsplit(":", 1)[0]
        netloc = f"{host}:{parts.port + 1}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """A URL safe to log: password, query string (API keys) and path tokens hidden."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    user = f"{parts.username}:***@" if parts.password else (f"{parts.username}@" if parts.username else "")
    path = "/***" if parts.path.strip("/") else parts.path
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", path, query, ""))


def _coerce(name: str, value: Any) -> Any:
    if name == "rpc_urls":
        urls = value if isinstance(value, list | tuple) else str(value).split(",")
        cleaned = tuple(u.strip() for u in urls if str(u).strip())
        if not cleaned:
            raise ConfigError("rpc_urls (AMOCA_RPC_URL) is empty")
        for url in cleaned:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"RPC URL must be http or https, got {redact_url(url)}")
        return cleaned
    if name == "commitment":
        if value not in COMMITMENTS:
            raise ConfigError(f"commitment must be one of {', '.join(COMMITMENTS)}, got {value!r}")
        return value
    if name == "metrics_port":
        try:
            port = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"metrics_port must be an integer, got {value!r}") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"metrics_port must be 0..65535, got {port}")
        return port
    if name == "data_dir":
        return Path(value)
    if name in _INT_FIELDS or name in _FLOAT_FIELDS:
        kind = int if name in _INT_FIELDS else float
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if number < 0:
            raise ConfigError(f"{name} must not be negative, got {number}")
        if name == "rankings_max_share" and not 0.01 <= number <= 1:
            raise ConfigError(f"rankings_max_share must be from 0.01 to 1, got {number}")
        return number
    if name == "shard":
        from indexer.registry import Shard

        Shard.parse(str(value))  # validates
        return str(value)
    if name == "writer_synchronous_commit":
        answer = {True: True, False: False, "on": True, "off": False}.get(
            value.strip().lower() if isinstance(value, str) else value)
        if answer is None:
            raise ConfigError(f"writer_synchronous_commit must be on or off, got {value!r}")
        return answer
    if name in ("database_url", "ws_url"):
        return str(value) if value not in (None, "") else None
    return value


def load_settings(
    config_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge `config/*.toml` (sorted by name), then the environment, then ``overrides``."""
    environ = os.environ if environ is None else environ
    known = {f.name for f in fields(Settings)}
    merged: dict[str, Any] = {}
    directory = config_dir if config_dir is not None else Path(environ.get("AMOCA_CONFIG_DIR", "config"))
    if directory.is_dir():
        for path in sorted(directory.glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
            section = data.get("indexer", {})
            if not isinstance(section, dict):
                raise ConfigError(f"{path}: [indexer] must be a table")
            unknown = set(section) - known
            if unknown:
                raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
            merged.update(section)
    for name, env in ENV_NAMES.items():
        if env in environ and environ[env] != "":
            merged[name] = environ[env]
    for name, value in (overrides or {}).items():
        if value is not None:
            merged[name] = value
    values = {name: _coerce(name, value) for name, value in merged.items()}
    settings = replace(Settings(), **values)
    if settings.rankings_max_delay < settings.rankings_quiet:
        raise ConfigError(f"rankings_max_delay ({settings.rankings_max_delay:g}) must not be shorter than"
                          f" rankings_quiet ({settings.rankings_quiet:g})")
    for name in ("rankings_interval", "retention_interval"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be more than 0 seconds")
    return settings
