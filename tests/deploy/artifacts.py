"""What the deploy tests read: the files under `deploy/`, the metric names the code exports,
the metric names a PromQL expression uses, the CLI as the manifests call it, and promtool."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from prometheus_client import CollectorRegistry

from indexer.cli import cli as cli_main
from indexer.metrics import Metrics
from tests.support.paths import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "amoca-indexer.json"
RUNBOOK = DEPLOY / "README.md"
# Series Prometheus itself creates for every target.
PROMETHEUS_BUILTINS = frozenset({"up"})

_INSTALL_PROMTOOL = (
    "promtool is not on PATH. It ships with Prometheus: `apt-get install prometheus` "
    "(Debian/Ubuntu), `brew install prometheus`, or the release tarball from "
    "prometheus.io/download (put its promtool on PATH). .ci/run installs it.")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def compose_mounts(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's volumes as source -> target (`source:target[:mode]`)."""
    return {volume.split(":")[0]: volume.split(":")[1] for volume in service.get("volumes", [])}


def external_tool(name: str, how_to_install: str) -> str:
    """The path of a tool from outside PyPI. Missing in CI (or with AMOCA_REQUIRE_TOOLS=1) it
    fails the test; on a developer's machine without it, the test is skipped with the way to
    install it, so the README's test command still runs everything else there."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") or os.environ.get("AMOCA_REQUIRE_TOOLS"):
            pytest.fail(how_to_install)
        pytest.skip(how_to_install)
    return path


def promtool() -> str:
    return external_tool("promtool", _INSTALL_PROMTOOL)


# -- metric names --------------------------------------------------------------------------
def exported_families() -> dict[str, str]:
    """Family name -> type ("counter", "gauge", "histogram") of every metric the code exports."""
    registry = CollectorRegistry()
    Metrics(registry)
    return {family.name: family.type for family in registry.collect()}


def exported_series_names() -> frozenset[str]:
    """Every sample name the exposition can carry: counters' `_total`, histograms' parts."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return frozenset(f"{name}{suffix}" for name, kind in exported_families().items()
                     for suffix in suffixes[kind])


def family_of(series: str, families: dict[str, str]) -> str:
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if series.endswith(suffix) and series.removesuffix(suffix) in families:
            return series.removesuffix(suffix)
    return series


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*")
_CALL = re.compile(r"\s*\(")
_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                       "group_right", "offset", "bool", "inf", "nan", "atan2"})


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub("", text)
    return {match.group() for match in _IDENTIFIER.finditer(text)
            if match.group().lower() not in _KEYWORDS and not _CALL.match(text, match.end())}


# -- alerts and dashboard ------------------------------------------------------------------
def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def dashboard_exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query, template variables included."""
    found = [(panel["title"], target["expr"]) for panel in dashboard_panels(board)
             for target in panel.get("targets", []) if target.get("expr")]
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query" and isinstance(query, dict):
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query["query"].strip())
            found.append((f"${variable['name']}", inner.group(1) if inner else query["query"]))
    return found


def deployment_metric_names() -> set[str]:
    """Every metric name the dashboard and the alert rules query."""
    exprs = [expr for _, expr in dashboard_exprs(dashboard())] + [rule["expr"] for rule in alert_rules()]
    return {name for expr in exprs for name in promql_metric_names(expr)}


def as_plain_promql(expr: str) -> str:
    """A dashboard query with Grafana's interval variables filled in, for promtool."""
    return expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")


# -- the command line as deployments call it -----------------------------------------------
def parse_cli(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Parse `amoca-indexer ARGV` with the real CLI (nothing runs): (subcommand, its params).

    Raises click.UsageError (or a subclass) for an unknown command or option.
    """
    args = list(argv)
    names = set(cli_main.list_commands(click.Context(cli_main)))
    position = next((i for i, arg in enumerate(args) if arg in names), None)
    if position is None:
        raise click.UsageError(f"no amoca-indexer subcommand in {args}")
    name = args[position]
    # The group's own options (--log-json, --log-level) come before the subcommand.
    with cli_main.make_context("amoca-indexer", [*args[:position], name]) as ctx:
        command = cli_main.get_command(ctx, name)
        assert command is not None
        with command.make_context(name, args[position + 1:], parent=ctx) as sub:
            return name, dict(sub.params)
