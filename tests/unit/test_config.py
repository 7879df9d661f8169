"""Settings: files, then AMOCA_* environment, then flags; clear errors; secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.config import derive_ws_url, load_settings, redact_url
from indexer.errors import ConfigError


def test_defaults_need_no_setting(tmp_path: Path) -> None:
    settings = load_settings(config_dir=tmp_path, environ={})
    assert settings.database_url is None
    assert settings.rpc_urls == ("http://127.0.0.1:8899",)
    assert settings.effective_ws_url == "ws://127.0.0.1:8900"
    assert settings.metrics_port == 9108
    assert settings.commitment == "confirmed"


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    (tmp_path / "amoca.toml").write_text('[indexer]\ncommitment = "finalized"\nmetrics_port = 1\n')
    env = {"AMOCA_METRICS_PORT": "2", "AMOCA_RPC_URL": "https://a.example/k1, https://b.example/k2"}
    settings = load_settings(config_dir=tmp_path, environ=env, overrides={"metrics_port": 3})
    assert settings.commitment == "finalized"
    assert settings.metrics_port == 3
    assert settings.rpc_urls == ("https://a.example/k1", "https://b.example/k2")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AMOCA_COMMITMENT": "final"}, "commitment must be one of"),
        ({"AMOCA_METRICS_PORT": "http"}, "metrics_port must be an integer"),
        ({"AMOCA_METRICS_PORT": "70000"}, "metrics_port must be 0..65535"),
        ({"AMOCA_RPC_URL": "ftp://x"}, "RPC URL must be http or https"),
        ({"AMOCA_SHARD": "2/2"}, "out of range"),
        ({"AMOCA_SHARD": "half"}, "shard must look like i/N"),
        ({"AMOCA_RECONCILE_INTERVAL": "-1"}, "must not be negative"),
        ({"AMOCA_RANKINGS_MAX_SHARE": "0"}, "rankings_max_share must be from 0.01 to 1"),
        ({"AMOCA_RANKINGS_MAX_SHARE": "1e-320"}, "rankings_max_share must be from 0.01 to 1"),
        ({"AMOCA_RETENTION_INTERVAL": "nan"}, "retention_interval must be a finite number"),
        ({"AMOCA_RANKINGS_QUIET": "inf"}, "rankings_quiet must be a finite number"),
        ({"AMOCA_RANKINGS_MAX_SHARE": "1.5"}, "from 0.01 to 1, got 1.5"),
        ({"AMOCA_RANKINGS_QUIET": "40"}, "must not be shorter than rankings_quiet"),
        ({"AMOCA_RETENTION_INTERVAL": "0"}, "retention_interval must be more than 0"),
        ({"AMOCA_WRITER_SYNCHRONOUS_COMMIT": "local"}, "writer_synchronous_commit must be on or off"),
    ],
)
def test_bad_values_are_one_clear_error(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(config_dir=tmp_path, environ=env)


def test_the_writers_synchronous_commit_is_on_unless_turned_off(tmp_path: Path) -> None:
    assert load_settings(config_dir=tmp_path, environ={}).writer_synchronous_commit is True
    off = load_settings(config_dir=tmp_path, environ={"AMOCA_WRITER_SYNCHRONOUS_COMMIT": "OFF"})
    assert off.writer_synchronous_commit is False
    (tmp_path / "amoca.toml").write_text("[indexer]\nwriter_synchronous_commit = false\n")
    assert load_settings(config_dir=tmp_path, environ={}).writer_synchronous_commit is False
    on = load_settings(config_dir=tmp_path, environ={"AMOCA_WRITER_SYNCHRONOUS_COMMIT": "on"})
    assert on.writer_synchronous_commit is True


def test_unknown_or_broken_file_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("[indexer]\nrpc_url = 'http://x'\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(config_dir=tmp_path, environ={})
    (tmp_path / "a.toml").write_text("[indexer\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_dir=tmp_path, environ={})


def test_the_shipped_config_file_loads() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert load_settings(config_dir=repo / "config", environ={}).metrics_port == 9108


@pytest.mark.parametrize(
    ("rpc", "ws"),
    [
        ("http://127.0.0.1:8899", "ws://127.0.0.1:8900"),
        ("https://mainnet.example.com/?api-key=abc", "wss://mainnet.example.com/?api-key=abc"),
        ("https://rpc.example:443/key", "wss://rpc.example:444/key"),
    ],
)
def test_ws_url_is_derived_as_solana_clients_do(rpc: str, ws: str) -> None:
    assert derive_ws_url(rpc) == ws


@pytest.mark.parametrize(
    "url",
    [
        "https://mainnet.helius-rpc.example/?api-key=SECRET123",
        "https://user:SECRET123@rpc.example:8899/",
        "https://solana-mainnet.example/v2/SECRET123",
        "postgresql://amoca:SECRET123@db:5432/amoca",
    ],
)
def test_redaction_hides_keys_passwords_and_path_tokens(url: str) -> None:
    redacted = redact_url(url)
    assert "SECRET123" not in redacted
    assert redacted.partition("://")[0] == url.partition("://")[0]
